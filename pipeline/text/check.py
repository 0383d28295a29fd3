"""The prompt keys checked before any weights load: prompt_syntax and clip_skip."""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.common.errors import UserError
from pipeline.text.syntaxes import SYNTAXES


def check_prompt_options(cfg: DictConfig, text_encoder_config: dict, syntaxes: tuple[str, ...] = SYNTAXES,
                         family: str = "") -> None:
    """prompt_syntax is a known one that the model's family reads (`syntaxes`); clip_skip counts layers the text
    encoder has (1 = the last, A1111's numbering)."""
    if cfg.prompt_syntax not in SYNTAXES:
        raise UserError(f"prompt_syntax must be one of {', '.join(SYNTAXES)}; got '{cfg.prompt_syntax}'.")
    if cfg.prompt_syntax not in syntaxes:
        raise UserError(f"prompt_syntax {cfg.prompt_syntax} is not read by {family} models; use one of "
                        f"{', '.join(syntaxes)}.")
    layers = text_encoder_config.get("num_hidden_layers")
    if cfg.clip_skip < 1 or (layers is not None and cfg.clip_skip > layers):
        raise UserError(f"clip_skip must be an integer from 1 (the last layer) to {layers} (this text encoder's "
                        f"layers); got {cfg.clip_skip}.")
    if cfg.clip_skip > 1 and cfg.prompt_syntax == "compel":
        raise UserError("clip_skip above 1 works with prompt_syntax a1111 or none, not compel (compel's own "
                        "penultimate-layer mode fails with this transformers version); set one of them back.")
