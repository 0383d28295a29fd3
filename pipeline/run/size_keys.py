"""SDXL's size and crop conditioning keys, checked before loading: pairs of whole numbers, set only for a family
whose UNet reads them."""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.common.errors import UserError

SIZES = ("original_size", "target_size", "negative_original_size", "negative_target_size")
CROPS = ("crops_coords_top_left", "negative_crops_coords_top_left")
DEFAULTS = {"crops_coords_top_left": [0, 0], "aesthetic_score": 6.0, "negative_aesthetic_score": 2.5}
CONDITIONED = ("sdxl", "sdxl-refiner")  # the families whose UNet takes time ids


def check_size_keys(cfg: DictConfig, family) -> None:
    """Sizes are [height, width] above 0, crops [top, left] from 0; on a model that takes no time ids, any of these
    keys set away from its default is refused (it would change nothing)."""
    for key in SIZES + CROPS:
        value = cfg[key]
        if value is None:
            continue
        lowest = 1 if key in SIZES else 0
        if len(value) != 2 or any(v < lowest for v in value):
            what = "[height, width] above 0" if key in SIZES else "[top, left] from 0"
            raise UserError(f"{key} must be two whole numbers, {what}; got {list(value)}.")
    if family.name in CONDITIONED:
        return
    changed = [key for key in SIZES + CROPS + ("aesthetic_score", "negative_aesthetic_score")
               if cfg[key] is not None and cfg[key] != DEFAULTS.get(key)]
    if changed:
        raise UserError(f"{changed[0]} conditions SDXL models only; model.path {cfg.model.path} is a {family.label} "
                        "model, which takes no size conditioning.")
