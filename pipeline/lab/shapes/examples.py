"""The example input images the configs name (configs/inputs/), drawn from the shapes world, never copied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.lab.shapes.layout import layout_map
from pipeline.lab.shapes.world import IMAGE_SIZE, POSITIONS, SIZES, Scene, Shape, render

OUTPAINT_KEEP = 48  # columns of its scene the outpaint example keeps; configs/outpaint.yaml pads the rest back


def placed(kind: str, colour: str, size: str, position: str, depth: float = 1.0) -> Shape:
    """A shape exactly at its named position and size, without the world's random jitter."""
    return Shape(kind, colour, size, position, *POSITIONS[position], SIZES[size], depth)


SCENES: dict[str, Scene] = {
    "shapes-red-circle.png": Scene("blue", (placed("circle", "red", "large", "centre"),)),
    "shapes-yellow-square.png": Scene("purple", (placed("square", "yellow", "large", "centre"),)),
    "shapes-pair.png": Scene(
        "white", (placed("triangle", "green", "small", "left", 0.9), placed("circle", "blue", "small", "right", 0.5)),
        "to the left of",
    ),
}
OUTPAINT_SCENE = Scene("green", (placed("square", "yellow", "large", "left"),))
LAYOUT_SCENE = Scene(  # configs/controlnet.yaml's map: a large circle left of a small square (colours: the prompt's)
    "white", (placed("circle", "white", "large", "left"), placed("square", "white", "small", "right")),
    "to the left of",
)


def centre_mask() -> np.ndarray:
    """A white square over the centre shape: the inpaint example's mask."""
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    mask[12:52, 12:52] = 255
    return mask


def example_images() -> dict[str, Image.Image]:
    """Every example by file name: the scenes, the red circle's depth map, the centre mask, the outpaint crop,
    the ControlNet's layout map."""
    images = {name: Image.fromarray(render(scene)[0]) for name, scene in SCENES.items()}
    depth = render(SCENES["shapes-red-circle.png"])[1]
    images["shapes-red-circle-depth.png"] = Image.fromarray((depth * 255).round().astype(np.uint8), mode="L")
    images["shapes-centre-mask.png"] = Image.fromarray(centre_mask(), mode="L")
    crop = render(OUTPAINT_SCENE)[0][:, :OUTPAINT_KEEP]
    images["shapes-left-crop.png"] = Image.fromarray(np.ascontiguousarray(crop))
    images["shapes-layout.png"] = Image.fromarray(layout_map(LAYOUT_SCENE))
    return images


def write_examples(folder: str | Path) -> list[Path]:
    """Write every example image into the folder and return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in example_images().items():
        image.save(folder / name)
        paths.append(folder / name)
    return paths
