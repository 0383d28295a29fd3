"""What every weight file named in a config must be before it is read (add-ons, checkpoint files): present, of a
known kind, and pickle only when allowed."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.common.errors import UserError
from pipeline.common.quiet import quiet_libraries

PICKLES = (".pt", ".ckpt", ".bin")


def check_file(path: Path, key: str, suffixes: tuple[str, ...], allow_pickle: bool) -> None:
    """One sentence naming the key when the file is missing, of an unknown kind, or a pickle not allowed."""
    if not path.is_file():
        raise UserError(f"{key} {path} does not exist.")
    if path.suffix not in suffixes:
        others = "/".join(s for s in suffixes if s in PICKLES)
        raise UserError(f"{key} {path} must be a .safetensors file (or, with model.allow_pickle, {others}).")
    if path.suffix in PICKLES and not allow_pickle:
        raise UserError(f"{key} {path} is a pickle file; set model.allow_pickle=true to load it (weights only).")


@contextmanager
def quietly() -> Iterator[None]:
    """The libraries' log lines and warnings off while a file is read or fitted (a failure is said in our words)."""
    with quiet_libraries(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
