"""A1111's extra-network tags in a prompt: `<lora:name>` or `<lora:name:weight>`, read and then removed."""

from __future__ import annotations

import re

from pipeline.common.errors import UserError

_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?>")


def lora_tags(prompt: str) -> list[tuple[str, float]]:
    """(name, weight) of each `<lora:...>` tag in the prompt, in order (weight 1 when not given)."""
    tags = []
    for match in _TAG.finditer(prompt):
        name, weight = match.group(1).strip(), match.group(2)
        try:
            tags.append((name, 1.0 if weight in (None, "") else float(weight)))
        except ValueError:
            raise UserError(f"prompt tag {match.group(0)} must end in a number (its weight); got '{weight}'.") from None
    return tags


def strip_tags(prompt: str) -> str:
    """The prompt without its `<lora:...>` tags, as the text encoder reads it."""
    return _TAG.sub("", prompt)
