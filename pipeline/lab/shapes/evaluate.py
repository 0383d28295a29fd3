"""Pixel scores of a generated image against its prompt: foreground colour, background, shape."""

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.lab.shapes.world import COLOURS, SHAPES

PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
NAMES = list(COLOURS)


@dataclass(frozen=True)
class PromptSpec:
    """What a scoring prompt asks for."""

    colour: str
    shape: str
    background: str

    @property
    def prompt(self) -> str:
        """The prompt text, in the world's caption form."""
        return f"a large {self.colour} {self.shape} in the centre, {self.background} background"


def eval_specs() -> list[PromptSpec]:
    """The fixed scoring set: every colour with every shape, each on a different background."""
    return [
        PromptSpec(colour, shape, NAMES[(i + 1 + j) % len(NAMES)])
        for i, colour in enumerate(NAMES)
        for j, shape in enumerate(SHAPES)
    ]


def pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """An (H, W, 3) float32 RGB array of an image."""
    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, np.float32)


def nearest_colour(rgb: np.ndarray) -> np.ndarray:
    """Index into the palette of the nearest named colour, per pixel."""
    return np.argmin(((rgb[..., None, :] - PALETTE) ** 2).sum(-1), axis=-1)


def colour_share(image: Image.Image | np.ndarray, colour: str, tolerance: float = 60.0) -> float:
    """Fraction of pixels within `tolerance` (RGB distance) of a named colour."""
    distance = np.linalg.norm(pixels(image) - np.array(COLOURS[colour], np.float32), axis=-1)
    return float((distance <= tolerance).mean())


SQUARE_FILL = 0.88  # a square fills its box (>= 0.93 after a VAE round trip), a circle pi/4 (0.76-0.85)
CIRCLE_FILL = 0.72  # a triangle fills half its box; a VAE-blunted apex shrinks the box, up to ~0.70


def shape_class(mask: np.ndarray) -> str:
    """Classify a foreground mask by how much of its bounding box it fills."""
    ys, xs = np.nonzero(mask)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    fill = mask.sum() / box
    if fill > SQUARE_FILL:
        return "square"
    return "circle" if fill > CIRCLE_FILL else "triangle"


def analyse(image: Image.Image | np.ndarray) -> dict[str, str | None]:
    """Read background colour, foreground colour and shape class from an image's pixels."""
    rgb = pixels(image)
    labels = nearest_colour(rgb)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    background = int(np.bincount(border, minlength=len(NAMES)).argmax())
    parts, count = ndimage.label(labels != background)
    if count == 0:
        return {"background": NAMES[background], "colour": None, "shape": None}
    largest = int(np.bincount(parts.ravel())[1:].argmax()) + 1
    mask = ndimage.binary_fill_holes(parts == largest)
    colour = int(np.bincount(labels[mask], minlength=len(NAMES)).argmax())
    return {"background": NAMES[background], "colour": NAMES[colour], "shape": shape_class(mask)}


def score_image(image: Image.Image | np.ndarray, spec: PromptSpec) -> dict[str, bool]:
    """Whether the image shows the prompt's foreground colour, background colour and shape."""
    found = analyse(image)
    return {
        "colour": found["colour"] == spec.colour,
        "background": found["background"] == spec.background,
        "shape": found["shape"] == spec.shape,
    }


def accuracy(scores: list[dict[str, bool]]) -> dict[str, float]:
    """Percentage of images right, per attribute."""
    return {key: 100.0 * float(np.mean([s[key] for s in scores])) for key in scores[0]}
