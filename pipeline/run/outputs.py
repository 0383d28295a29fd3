"""Writing results: numbered PNGs with A1111-style parameters, the resolved config beside each, never overwriting."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pipeline.common.errors import UserError
from pipeline.common.interrupts import held

NUMBERED = re.compile(r"^(\d{5,})-")
FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, quota exceeded
T = TypeVar("T")


def check_writable(output_dir: str) -> Path:
    """Prove a file can be written in the output folder, before any model loads. A folder that is missing is made
    for the probe and removed again: it is made for good by the first file written (ensure_folder), so a run
    refused or stopped before its first file leaves no empty folder behind."""
    folder = Path(output_dir)
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        in_folder(folder, lambda: tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-").close())  # deleted on close
    except OSError as err:
        raise UserError(f"output_dir {folder} cannot be written ({err.strerror or type(err).__name__}).") from None
    finally:
        for parent in made:  # deepest first; a folder another writer filled meanwhile stays
            try:
                if parent.exists():
                    parent.rmdir()
            except OSError:
                break
    return folder


def in_folder(folder: Path, action: Callable[[], T], tries: int = 20) -> T:
    """Make the folder, then run `action` in it. Another process checking the same new folder (two launched
    processes of one job) removes it when its probe is done, if it is empty: then it is made again and `action`
    retried; the last try's error is the action's own."""
    for _ in range(tries - 1):
        ensure_folder(folder)
        try:
            return action()
        except FileNotFoundError:
            pass
    ensure_folder(folder)
    return action()


def ensure_folder(folder: Path) -> None:
    """Make the output folder (and its parents) if it is not there yet: called just before a file is written."""
    folder.mkdir(parents=True, exist_ok=True)


def a1111_parameters(prompt: str, negative: str, fields: dict[str, object]) -> str:
    """The 'parameters' text AUTOMATIC1111 writes: prompt, 'Negative prompt:' line, then 'Key: value, ...'.

    PNG text may not hold NUL, so a NUL is shown as U+2400 (the symbol for null); the saved YAML keeps it exactly.
    """
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{key}: {value}" for key, value in fields.items()))
    return "\n".join(lines).replace("\x00", "\u2400")


def next_number(folder: Path) -> int:
    """One past the highest number already used in the folder."""
    used = [int(m.group(1)) for p in folder.iterdir() if (m := NUMBERED.match(p.name))]
    return max(used, default=0) + 1


def number_in_use(folder: Path, number: int) -> bool:
    """Whether any file or folder in the folder already carries this number."""
    return any(folder.glob(f"{number:05d}-*"))


@contextmanager
def reserved_number(folder: Path) -> Iterator[int]:
    """A number no entry of the folder and no other writer uses, held while the caller places its files.

    The hold is a hidden marker created with O_EXCL, so two processes never get the same number: the second
    either fails to create the marker, or creates it after the first removed it, by when the first's files
    are in place and the check below sees them. A marker left by a killed process only skips its number.
    """
    number = in_folder(folder, lambda: next_number(folder))
    while True:
        marker = folder / f".{number:05d}.reserved"
        try:
            in_folder(folder, lambda: os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)))
        except FileExistsError:
            number += 1
            continue
        if not number_in_use(folder, number):
            break
        marker.unlink()
        number += 1
    try:
        yield number
    finally:
        marker.unlink(missing_ok=True)


def write_failure(target: str, err: OSError) -> UserError:
    """One sentence for a failed write naming the target (a folder or file); a full disk says so."""
    reason = err.strerror or type(err).__name__
    if err.errno in FULL:
        return UserError(f"{target} could not be written because the disk is full ({reason}); "
                         f"the files finished before it are kept.")
    return UserError(f"{target} could not be written ({reason}); the files finished before it are kept.")


def publish(tmp: Path, final: Path) -> bool:
    """Give a finished temp file its final name unless that name exists; True when it was placed."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    tmp.unlink()
    return True


def temp_file(folder: Path, suffix: str) -> Path:
    """A fresh hidden temp path in the folder (same filesystem, so the final link is atomic)."""
    handle, name = in_folder(folder, lambda: tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix))
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def place_pair(folder: Path, stem: str, png_tmp: Path, yaml_tmp: Path) -> Path:
    """Give the finished temp files the next free NNNNN-stem names: the YAML first, so no PNG is without its YAML."""
    while True:
        with reserved_number(folder) as number:
            yaml_final, png_final = (folder / f"{number:05d}-{stem}{suffix}" for suffix in (".yaml", ".png"))
            try:
                os.link(yaml_tmp, yaml_final)
            except FileExistsError:  # only a writer that reserves no numbers can take a reserved name
                continue
            try:
                os.link(png_tmp, png_final)
            except FileExistsError:
                yaml_final.unlink()
                continue
            return png_final


@contextmanager
def _pair_written(image: Image.Image, folder: Path, parameters: str, config_yaml: str) -> Iterator[tuple[Path, Path]]:
    """The PNG (with the parameters chunk) and its YAML written under temp names in the folder, for the caller to
    place; the temps are removed after, and a failed write is a UserError naming the folder."""
    meta = PngInfo()
    meta.add_text("parameters", parameters)
    temps: list[Path] = []
    try:
        temps += [temp_file(folder, ".png"), temp_file(folder, ".yaml")]
        image.save(temps[0], format="PNG", pnginfo=meta)
        temps[1].write_text(config_yaml, encoding="utf-8")
        yield temps[0], temps[1]
    except OSError as err:
        raise write_failure(f"output_dir {folder}", err) from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def save_image(image: Image.Image, folder: Path, stem: str, parameters: str, config_yaml: str) -> Path:
    """Write NNNNN-stem.png (with the parameters chunk) and NNNNN-stem.yaml; existing files are never touched.

    Both files are written under temp names, then placed while SIGINT/SIGTERM wait (interrupts.held), so an
    interrupt leaves both or neither. A full disk or an unwritable folder is a UserError naming the folder.
    """
    with _pair_written(image, folder, parameters, config_yaml) as (png_tmp, yaml_tmp), held():
        return place_pair(folder, stem, png_tmp, yaml_tmp)


def save_named(image: Image.Image, folder: Path, name: str, parameters: str, config_yaml: str) -> Path | None:
    """Write name.yaml then name.png (with the parameters chunk), or nothing if name.png is already there (a job's
    image done before): never overwritten. Interrupts wait while the pair is placed, as in save_image."""
    png, yaml_path = folder / f"{name}.png", folder / f"{name}.yaml"
    if png.exists():
        return None
    with _pair_written(image, folder, parameters, config_yaml) as (png_tmp, yaml_tmp), held():
        yaml_path.unlink(missing_ok=True)  # a YAML without its PNG is an image that was never finished
        os.link(yaml_tmp, yaml_path)
        return png if publish(png_tmp, png) else None
