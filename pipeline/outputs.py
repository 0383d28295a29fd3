"""Writing results: numbered PNGs with A1111-style parameters, the resolved config beside each, never overwriting."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import UserError

NUMBERED = re.compile(r"^(\d{5})-")


def check_writable(output_dir: str) -> Path:
    """Create the output folder if needed and prove a file can be written there, before any model loads."""
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as err:
        raise UserError(f"output_dir {folder} cannot be written ({err.strerror or type(err).__name__}).") from None
    return folder


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
    handle, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def save_image(image: Image.Image, folder: Path, stem: str, parameters: str, config_yaml: str) -> Path:
    """Write NNNNN-stem.png (with the parameters chunk) and NNNNN-stem.yaml; existing files are never touched."""
    meta = PngInfo()
    meta.add_text("parameters", parameters)
    png_tmp, yaml_tmp = temp_file(folder, ".png"), temp_file(folder, ".yaml")
    try:
        image.save(png_tmp, format="PNG", pnginfo=meta)
        yaml_tmp.write_text(config_yaml, encoding="utf-8")
        number = next_number(folder)
        while True:
            name = f"{number:05d}-{stem}"
            if not (folder / f"{name}.yaml").exists() and publish(png_tmp, folder / f"{name}.png"):
                break
            number += 1
        if not publish(yaml_tmp, folder / f"{name}.yaml"):
            raise UserError(f"output_dir {folder} gained {name}.yaml while writing; the image is {name}.png.")
        return folder / f"{name}.png"
    finally:
        for tmp in (png_tmp, yaml_tmp):
            tmp.unlink(missing_ok=True)
