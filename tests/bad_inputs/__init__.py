"""Bad-input case tables, one module per family; tests/test_reliability_table.py runs every case they list.

Each module defines CASES: a list of Case. A case names the tool (generate, compare or one of the latent
commands), builds its arguments from (tmp_path, tiny_model) and says the text the one error line must contain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

Args = Union[list[str], Callable[[Path, Path], list[str]]]


@dataclass
class Case:
    """One bad input: tool, config file ('task' = a valid task file for the tiny model), overrides, expected text."""

    name: str
    overrides: Args
    expected: str
    tool: str = "generate"  # generate | compare | roundtrip | channels | interpolate | noise
    config: Union[str, Callable[[Path, Path], Path]] = "task"
    seconds: float = 5.0  # the limit: bad input is refused quickly, before any work
