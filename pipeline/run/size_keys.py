"""SDXL's size and crop conditioning keys, checked before loading: pairs of whole numbers, set only for a family
whose UNet reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from pipeline.common.errors import UserError
from pipeline.models.inspect import ModelInfo
from pipeline.models.single_file import model_hash

SIZES = ("original_size", "target_size", "negative_original_size", "negative_target_size")
CROPS = ("crops_coords_top_left", "negative_crops_coords_top_left")
DEFAULTS = {"crops_coords_top_left": [0, 0], "aesthetic_score": 6.0, "negative_aesthetic_score": 2.5}
CONDITIONED = ("sdxl", "sdxl-refiner")  # the families whose UNet takes time ids
FIELDS = {"original_size": "Original size", "crops_coords_top_left": "Crop top-left", "target_size": "Target size",
          "negative_original_size": "Negative original size",
          "negative_crops_coords_top_left": "Negative crop top-left", "negative_target_size": "Negative target size",
          "aesthetic_score": "Aesthetic score", "negative_aesthetic_score": "Negative aesthetic score"}


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


def sdxl_fields(cfg: DictConfig, refiner: Optional[ModelInfo]) -> dict[str, object]:
    """The image's parameters for SDXL: the refiner as A1111 writes it (its name with a checkpoint's short hash in
    brackets, and the switch point), and each size, crop or score key set away from its default, pairs written
    as A1111 writes sizes (a x b)."""
    fields: dict[str, object] = {}
    if refiner is not None:
        name = Path(cfg.refiner.path).stem if refiner.single_file else Path(cfg.refiner.path).name
        fields["Refiner"] = f"{name} [{model_hash(cfg.refiner.path)}]" if refiner.single_file else name
        fields["Refiner switch at"] = cfg.refiner.switch_at
    for key, label in FIELDS.items():
        value = cfg[key]
        if value is not None and value != DEFAULTS.get(key):
            fields[label] = "x".join(str(v) for v in value) if key in SIZES + CROPS else value
    return fields
