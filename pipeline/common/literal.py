"""User text is data: every string is escaped before it enters OmegaConf, so no `${...}` is ever interpolated.

OmegaConf reads `\\${` as a literal `${`, and 2n backslashes before `${` as n literal backslashes followed by
an interpolation; so n backslashes before `${` become 2n + 1, and reading the node gives back the exact text.
Backslashes anywhere else are literal already and stay as they are.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")


def escape(text: str) -> str:
    """The OmegaConf string whose resolved value is exactly `text`."""
    return _BEFORE_INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)


def literal(value: Any) -> Any:
    """A plain value (mappings and lists walked) with every string escaped, ready for OmegaConf.create."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {key: literal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [literal(item) for item in value]
    return value


def _section_kind(hint: Any) -> str | None:
    """'mapping' or 'list' when a declared type is one (Optional too), else None."""
    if typing.get_origin(hint) is typing.Union:
        kinds = [_section_kind(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else None
    if dataclasses.is_dataclass(hint) or typing.get_origin(hint) is dict or hint is dict:
        return "mapping"
    if typing.get_origin(hint) is list or hint is list:
        return "list"
    return None


def text_in_section(data: dict, schema: Any, prefix: str = "") -> tuple[str, str, str] | None:
    """(dotted key, 'mapping' or 'list', the text) where `data` gives text for a section of the schema, or None.

    OmegaConf would take such escaped text for an interpolation and resolve it once more, so it is refused first.
    """
    if not dataclasses.is_dataclass(schema):
        return None
    hints = typing.get_type_hints(schema)
    for key, value in data.items():
        hint = hints.get(key) if isinstance(key, str) else None
        kind = _section_kind(hint)
        if kind and isinstance(value, str):
            return f"{prefix}{key}", kind, value
        if kind == "mapping" and isinstance(value, dict):
            found = text_in_section(value, hint, f"{prefix}{key}.")
            if found:
                return found
    return None
