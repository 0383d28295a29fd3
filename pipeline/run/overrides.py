"""Command-line overrides (`key=value`) against a config schema: the value read as the key's type wants it, a
dotted key nested into a mapping, a key inside a list's entry set in place; and OmegaConf's errors as one line."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.common import yaml_guard
from pipeline.common.errors import UserError
from pipeline.common.literal import literal

RESOLVING = re.compile(r"^While dereferencing interpolation '.*?': (?=Value )")  # our escaped text, not the user's


def describe(err: OmegaConfBaseException) -> str:
    """Turn an OmegaConf error into 'key: reason' without its multi-line context."""
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    reason = RESOLVING.sub("", str(err).splitlines()[0])
    if type(err).__name__ == "ConfigKeyError":
        return f"unknown key '{key}'"
    return f"key '{key}': {reason}" if key else reason


def _field_type(key: str, schema: type) -> Any:
    """The declared type of a dotted key in the schema, or None when the key is not declared."""
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


def parse_override(item: str, schema: type) -> tuple[str, Any]:
    """Split 'key=value'; the value is read as YAML except for string keys, which keep the raw text."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"command-line override '{item}' must have the form key=value.")
    kind = _field_type(key, schema)
    if kind is Optional[str] and raw in ("null", "~"):
        return key, None
    if kind in (str, Optional[str]):
        return key, raw
    try:
        shown = item if len(item) <= 60 else f"{item[:57]}..."
        return key, yaml_guard.load(raw, f"command-line override '{shown}'") if raw != "" else None
    except yaml.YAMLError:
        return key, raw


def nest(key: str, value: Any) -> dict:
    """Turn a dotted key and value into a nested mapping."""
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def update_entry(cfg: DictConfig, key: str, value: Any, source: str) -> None:
    """Set a key inside a list's entry (`controlnets.0.image=map.png`), as Hydra's overrides do; the entry must
    exist, and its schema checks the value."""
    parts = key.split(".")
    index = next(i for i, part in enumerate(parts) if part.isdigit())
    listed = OmegaConf.select(cfg, ".".join(parts[:index]))
    if not OmegaConf.is_list(listed) or int(parts[index]) >= len(listed):
        count = len(listed) if OmegaConf.is_list(listed) else 0
        raise UserError(f"{source}: '{'.'.join(parts[:index])}' has no entry {parts[index]} ({count} listed).")
    try:
        OmegaConf.update(cfg, key, literal(value) if isinstance(value, (dict, list)) else value, merge=True)
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise UserError(f"{source}: {describe(err).rstrip('.')}.") from None
