"""Configs for tools: the generation Config extended by a tool's own section, loaded like config.load."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from . import config


def declared_type(schema: type, key: str) -> Any:
    """The declared type of a dotted key in a dataclass schema, or None when the key is not declared."""
    cls: Any = schema
    hint: Any = None
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        hint = cls = hints[part]
    return hint


def parse_override(schema: type, item: str) -> tuple[str, Any]:
    """config.parse_override, with string keys of the tool's schema keeping their raw text too."""
    key, value = config.parse_override(item)
    if declared_type(schema, key) in (str, Optional[str]):
        value = item.partition("=")[2]
    return key, value


def load_tool(schema: type, path: str | Path | None, overrides: list[str] = ()) -> DictConfig:
    """config.load for a schema that subclasses Config: defaults, base.yaml beside the file, the file, overrides."""
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    for key in config.OPEN_MAPPINGS:
        OmegaConf.set_struct(OmegaConf.select(cfg, key), False)
    if path is not None:
        path = Path(path)
        base = path.parent / config.BASE_NAME
        if base.is_file() and base.resolve() != path.resolve():
            cfg = config._merge(cfg, config._read_yaml(base), str(base))
        cfg = config._merge(cfg, config._read_yaml(path), str(path))
    for item in overrides:
        key, value = parse_override(schema, item)
        cfg = config._merge(cfg, config._nest(key, value), f"command-line override '{item}'")
    return cfg


def generation_config(cfg: DictConfig, section: str, **changes: Any) -> DictConfig:
    """The plain generation Config inside a tool config (its section dropped), with keys replaced.

    A replaced mapping (e.g. scheduler) replaces the old one whole, so no options leak between cells.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop(section)
    data.update(changes)
    return config._merge(config.load(None), data, f"the {section} config")
