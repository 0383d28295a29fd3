"""An image's resolved YAML for a job line that differs from a checked line only in its prompt texts, without
merging a config for it: the checked line's YAML with the texts' top-level entries written anew.

YAML writes a top-level `key: value` entry the same whatever entries surround it, so the checked line's YAML is cut
into its top-level entries and a text's entry is replaced by the one `entry` writes. A template is made only when
`entry` gives back the checked line's own text entries exactly; otherwise the line is merged and written whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import OmegaConf

from pipeline.run.config import to_yaml
from pipeline.common.literal import literal

_TOP_LEVEL = re.compile(r"\n(?=\S)")  # a newline before a line that starts at column 0: a key or a comment


@dataclass
class Template:
    """One image's YAML cut into top-level entries, and which entry holds each text key."""

    entries: list[str]
    at: dict[str, int]

    def fill(self, texts: dict[str, str]) -> str:
        """The YAML with these texts in place of the checked line's."""
        entries = list(self.entries)
        for key, text in texts.items():
            entries[self.at[key]] = entry(key, text)
        return "".join(entries)


def entry(key: str, text: str) -> str:
    """A top-level `key: text` entry as the config's YAML (config.to_yaml) writes it."""
    return to_yaml(OmegaConf.create(literal({key: text})))


def template(image_yaml: str, texts: dict[str, str]) -> Template | None:
    """The image's YAML as a template for these texts (the values it holds for them), or None when an entry of
    theirs cannot be found exactly as `entry` writes it."""
    cuts = [0] + [match.end() for match in _TOP_LEVEL.finditer(image_yaml)] + [len(image_yaml)]
    entries = [image_yaml[start:end] for start, end in zip(cuts, cuts[1:])]
    at = {}
    for key, text in texts.items():
        written = entry(key, text)
        found = [i for i, part in enumerate(entries) if part == written]
        if len(found) != 1:
            return None
        at[key] = found[0]
    return Template(entries, at)
