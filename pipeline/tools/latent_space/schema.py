"""The latent tools' config: a generation Config plus a `latents:` section, loaded like every config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from pipeline.run.config import Config
from pipeline.common.errors import UserError
from pipeline.common.limits import MAX_FRAME_MS, MAX_FRAMES, MAX_LIST, MAX_SEED
from pipeline.tools.tool_config import load_tool

SECTION = "latents"
BETWEEN = ("images", "seeds", "prompts")
METHODS = ("linear", "slerp")


@dataclass
class LatentsSection:
    """Settings of the latent tools; the image is the top-level `image`, the seed `seed`, the prompt `prompt`."""

    image_b: Optional[str] = None
    sample: bool = False
    between: str = "images"
    seed_b: int = 1
    prompt_b: str = ""
    frames: int = 8
    method: str = "slerp"
    noise_level: float = 0.0
    noise_levels: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
    frame_ms: int = 200


@dataclass
class LatentsConfig(Config):
    """A generation config plus the latent tools' `latents:` section."""

    latents: LatentsSection = field(default_factory=LatentsSection)


def load(path: str | Path | None, overrides: list[str] = ()) -> DictConfig:
    """The latent tools' config: defaults <- base.yaml <- the file <- key=value overrides, strict keys."""
    return load_tool(LatentsConfig, path, overrides)


def _require(ok: bool, key: str, must: str, got: object) -> None:
    """One sentence naming the key when a value is out of range."""
    if not ok:
        raise UserError(f"{SECTION}.{key} must be {must}; got {got!r}.")


def check_section(cfg: DictConfig) -> None:
    """Ranges and choices of the `latents:` keys that the schema's types cannot express."""
    section = cfg.latents
    _require(section.between in BETWEEN, "between", f"one of {', '.join(BETWEEN)}", section.between)
    _require(section.method in METHODS, "method", f"one of {', '.join(METHODS)}", section.method)
    _require(section.frames >= 2, "frames", "an integer >= 2", section.frames)
    _require(section.frames <= MAX_FRAMES, "frames", f"at most {MAX_FRAMES}", section.frames)
    _require(1 <= section.frame_ms <= MAX_FRAME_MS, "frame_ms",
             f"an integer from 1 to {MAX_FRAME_MS} (milliseconds per GIF frame, 16 bits of centiseconds)",
             section.frame_ms)
    _require(0 <= section.seed_b <= MAX_SEED, "seed_b", "an integer from 0 to 2^64 - 1", section.seed_b)
    _require(0 <= section.noise_level <= 1, "noise_level", "a number in [0, 1]", section.noise_level)
    _require(len(section.noise_levels) > 0, "noise_levels", "a non-empty list", list(section.noise_levels))
    _require(len(section.noise_levels) <= MAX_LIST, "noise_levels", f"a list of at most {MAX_LIST} levels",
             len(section.noise_levels))
    if cfg.seed > MAX_SEED:
        raise UserError(f"seed must be at most {MAX_SEED} (2^64 - 1, the largest seed); got {cfg.seed}.")
    for i, level in enumerate(section.noise_levels):
        _require(0 <= level <= 1, f"noise_levels[{i}]", "a number in [0, 1]", level)
