"""The example input images the variant configs name, drawn from the shapes world (never copied from anywhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .world import IMAGE_SIZE, POSITIONS, SIZES, Scene, Shape, render

OUTPAINT_KEEP = 48  # columns of the scene the outpaint example keeps; the config pads the rest back


def _scene(colour: str, kind: str, position: str, background: str) -> Scene:
    """A one-shape scene, large, exactly at its position."""
    cx, cy = POSITIONS[position]
    return Scene(background, (Shape(kind, colour, "large", position, cx, cy, SIZES["large"], 1.0),))


def write_examples(folder: str | Path) -> list[Path]:
    """Write scene.png, scene-mask.png (a square over the shape), scene-depth.png and scene-left.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, depth = render(_scene("red", "circle", "centre", "blue"))
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    mask[12:52, 12:52] = 255
    wide, _ = render(_scene("yellow", "square", "left", "green"))
    files = {
        "scene.png": Image.fromarray(image),
        "scene-mask.png": Image.fromarray(mask, mode="L"),
        "scene-depth.png": Image.fromarray((depth * 255).round().astype(np.uint8), mode="L"),
        "scene-left.png": Image.fromarray(np.ascontiguousarray(wide[:, :OUTPAINT_KEEP])),
    }
    for name, picture in files.items():
        picture.save(folder / name)
    return [folder / name for name in files]
