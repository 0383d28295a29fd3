"""The scorer plug-in point: the comparison's table and a job's page ask every registered scorer to score an image
against its prompt.

A scorer answers only for prompts of its kind (a caption of a world it knows) and names the columns it fills. A
package adds one through the `pipeline.scorers` entry point group (pyproject.toml's `[project.entry-points]`), whose
entries name a Scorer; they are loaded the first time a table or page is drawn, never at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Callable, Optional

from PIL import Image

GROUP = "pipeline.scorers"


@dataclass(frozen=True)
class Scorer:
    """Pixel scores of an image against its prompt: the columns `score` may fill, in table order, those of them a
    job's page shows, and `score` itself (None when the prompt is not of the scorer's kind)."""

    columns: tuple[str, ...]
    score: Callable[[Image.Image, str], Optional[dict[str, Any]]]
    page_columns: tuple[str, ...] = ()


REGISTERED: dict[str, Scorer] = {}  # scorers a program adds itself, by name


def register(name: str, scorer: Scorer) -> None:
    """Add a scorer under a name (one an installed entry point has is replaced)."""
    REGISTERED[name] = scorer


@cache
def _installed() -> dict[str, Scorer]:
    """The scorers the installed packages name in the entry point group, loaded once."""
    return {point.name: point.load() for point in entry_points(group=GROUP)}


def scorers() -> list[Scorer]:
    """Every scorer, installed or registered, in the order of their names."""
    found = {**_installed(), **REGISTERED}
    return [found[name] for name in sorted(found)]


def score_columns() -> list[str]:
    """Every column the scorers may fill, in order."""
    return [column for scorer in scorers() for column in scorer.columns]


def page_columns() -> list[str]:
    """The score columns a job's page shows."""
    return [column for scorer in scorers() for column in scorer.page_columns]


def image_scores(image: Image.Image, prompt: str) -> dict[str, Any]:
    """Every scorer's answer for this image and prompt, joined ({} when no scorer knows the prompt's kind)."""
    found: dict[str, Any] = {}
    for scorer in scorers():
        found.update(scorer.score(image, prompt) or {})
    return found
