"""Config keys that only some families read, checked against the model's family before loading: a key that would
change nothing is refused in one sentence rather than ignored."""

from __future__ import annotations

from transformers import T5EncoderModel

from pipeline.common.errors import UserError
from pipeline.engine.guidance import MAX_GUIDANCE_SCALE
from pipeline.models.families.family import Family, guidance_scale_of

T5_POSITIONS = 512  # the longest T5 sequence SD3's and FLUX's pipelines take (FluxPipeline refuses more)


def has_t5(family: Family) -> bool:
    """Whether the family's conditioning can read a T5 encoder."""
    return any(part.loader is T5EncoderModel for part in family.parts)


def check_family_keys(cfg, family: Family) -> None:
    """model.without, true_cfg_scale, max_sequence_length and clip_skip against what the family reads."""
    unknown = sorted(set(cfg.model.without) - set(family.optional_groups))
    if unknown:
        takes = ", ".join(family.optional_groups) or "none"
        raise UserError(f"model.without names parts a {family.label} model cannot leave out: {', '.join(unknown)} "
                        f"(it may leave out: {takes}).")
    if not 0 <= cfg.true_cfg_scale <= MAX_GUIDANCE_SCALE:
        raise UserError(f"true_cfg_scale must be a number in [0, {MAX_GUIDANCE_SCALE:g}]; got {cfg.true_cfg_scale}.")
    if family.cfg_scale is guidance_scale_of and cfg.true_cfg_scale != 1:
        raise UserError(f"true_cfg_scale is FLUX's classifier-free guidance; {family.label} models guide by "
                        f"guidance_scale, so leave true_cfg_scale at 1 (got {cfg.true_cfg_scale}).")
    length = cfg.max_sequence_length
    if length is not None and not has_t5(family):
        raise UserError(f"max_sequence_length sets a T5 encoder's tokens; {family.label} models have no T5.")
    if length is not None and not 1 <= length <= T5_POSITIONS:
        raise UserError(f"max_sequence_length must be an integer from 1 to {T5_POSITIONS}; got {length}.")
    if cfg.clip_skip > 1 and not family.clip_skip:
        raise UserError(f"clip_skip changes nothing for {family.label} models (they read CLIP's pooled output "
                        "only); leave it at 1.")
