"""A tool run's own numbered folder under output_dir, and files written into it atomically, never overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from pipeline.common.errors import UserError
from pipeline.run.outputs import publish, reserved_number, temp_file, write_failure


def new_run_folder(output_dir: Path, stem: str) -> Path:
    """Create output_dir/NNNNN-stem with the next free number (reserved like an image's); never an existing one."""
    while True:
        try:
            with reserved_number(output_dir) as number:
                folder = output_dir / f"{number:05d}-{stem}"
                folder.mkdir()
                return folder
        except FileExistsError:
            continue
        except OSError as err:
            raise write_failure(f"output_dir {output_dir}", err) from None


def write_file(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write a file through a temp name and link it in place; refuse if the name is already taken."""
    temps: list[Path] = []
    try:
        temps.append(temp_file(folder, Path(name).suffix))
        write(temps[0])
        if not publish(temps[0], folder / name):
            raise UserError(f"{folder / name} already exists; it was left untouched.")
    except OSError as err:
        raise write_failure(str(folder / name), err) from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return folder / name


def save_png(image: Image.Image, folder: Path, name: str) -> Path:
    """One PNG into the run folder."""
    return write_file(folder, name, lambda tmp: image.save(tmp, format="PNG"))


def save_text(text: str, folder: Path, name: str) -> Path:
    """One text file (YAML, CSV, JSON) into the run folder."""
    return write_file(folder, name, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_gif(frames: list[Image.Image], folder: Path, name: str, frame_ms: int) -> Path:
    """An endlessly looping animated GIF of the frames."""
    def write(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)

    return write_file(folder, name, write)
