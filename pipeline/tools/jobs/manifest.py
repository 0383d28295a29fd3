"""A job's manifest (`job.json` in its output_dir): what the job is (a hash of every image's config and name) and
which images are done, so a second run resumes it and a changed job is refused before any weights load."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.common.errors import UserError
from pipeline.run.outputs import ensure_folder
from pipeline.run.processes import process_index

NAME = "job.json"


def identity_part(name: str, config_yaml: str) -> bytes:
    """One image's part of the job's fingerprint, the sha256 over every image's name and resolved config in order."""
    return f"{name}\n{config_yaml}\n".encode()


def free_folder(folder: Path) -> Path:
    """The first of folder-2, folder-3, ... that does not exist (what to offer instead of a used folder)."""
    number = 2
    while folder.with_name(f"{folder.name}-{number}").exists():
        number += 1
    return folder.with_name(f"{folder.name}-{number}")


def check_manifest(folder: Path, job_id: str) -> None:
    """A folder holding another job's manifest is refused: its images belong to that job."""
    path = folder / NAME
    if not path.is_file():
        return
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("identity")
    except (OSError, ValueError, AttributeError) as err:
        raise UserError(f"{path} cannot be read ({type(err).__name__}); set output_dir to a new folder, e.g. "
                        f"{free_folder(folder)}.") from None
    if found != job_id:
        raise UserError(f"output_dir {folder} holds another job (its {NAME} differs: the prompts or settings "
                        f"changed); nothing there was touched: set output_dir to a new folder, e.g. "
                        f"{free_folder(folder)}.")


def save_times(folder: Path, seconds: dict[str, float]) -> None:
    """This process's seconds per image, for the manifest (each process writes its own file)."""
    if seconds:
        (folder / f".times-{process_index()}-{os.getpid()}.json").write_text(json.dumps(seconds), encoding="utf-8")


def _times(folder: Path) -> dict[str, float]:
    """The seconds recorded by earlier runs (in the manifest) and by this run's processes (their files, then gone)."""
    seconds: dict[str, float] = {}
    try:
        seconds.update(json.loads((folder / NAME).read_text(encoding="utf-8")).get("seconds", {}))
    except (OSError, ValueError, AttributeError):
        pass
    for part in sorted(folder.glob(".times-*.json")):
        seconds.update(json.loads(part.read_text(encoding="utf-8")))
        part.unlink()
    return seconds


def write_manifest(folder: Path, source: str, job_id: str, lines: int, names: list[str]) -> dict:
    """Write (atomically) what the job is, which of its images are in the folder now, and each one's seconds."""
    done = [name for name in names if (folder / f"{name}.png").is_file()]
    finished = set(done)
    record = {"job": source, "identity": job_id, "lines": lines, "images": len(names), "done": len(done),
              "done_images": done, "pending_images": [n for n in names if n not in finished],
              "seconds": {k: v for k, v in _times(folder).items() if k in finished}}
    ensure_folder(folder)  # the job's first file makes its folder (a refused run leaves none)
    temp = folder / f".{NAME}.tmp-{os.getpid()}"
    temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(temp, folder / NAME)
    return record
