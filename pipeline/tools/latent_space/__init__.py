"""Latent-space tools, one module per command: roundtrip, channels, interpolate, noise (built on latents.py)."""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from pipeline.tools.latent_space import channels, interpolate, noise, roundtrip
from pipeline.tools.latent_space.common import ToolResult, summary
from pipeline.tools.latent_space.schema import load

COMMANDS: dict[str, Callable[[DictConfig], ToolResult]] = {
    "roundtrip": roundtrip.roundtrip,
    "channels": channels.channels,
    "interpolate": interpolate.interpolate,
    "noise": noise.noise,
}

__all__ = ["COMMANDS", "ToolResult", "load", "run", "summary"]


def run(command: str, cfg: DictConfig) -> ToolResult:
    """Run one latent tool on a loaded config."""
    return COMMANDS[command](cfg)
