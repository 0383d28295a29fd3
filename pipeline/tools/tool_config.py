"""Configs for tools: the generation Config extended by a tool's own section, loaded like config.load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.run import config


def load_tool(schema: type, path: str | Path | None, overrides: list[str] = ()) -> DictConfig:
    """config.load for a schema that subclasses Config: defaults, base.yaml beside the file, the file, overrides."""
    return config.load(path, overrides, schema=schema)


def generation_config(cfg: DictConfig, section: str, **changes: Any) -> DictConfig:
    """The plain generation Config inside a tool config (its section dropped), with keys replaced.

    A replaced mapping (e.g. scheduler) replaces the old one whole, so no options leak between cells.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop(section)
    data.update(changes)
    return config.merge(config.load(None), data, f"the {section} config")
