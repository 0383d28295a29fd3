"""The SDXL-format sibling's training pictures: the shapes world seen as SDXL's data was (Podell et al. 2023,
section 2.2). Some scenes are drawn larger than the 64x64 output and cut to it at a random offset, the offset being
`crops_coords_top_left`; some are drawn smaller and scaled up (blurred), their size being `original_size`; the rest
are the plain 64x64 scene, original (64, 64) and crop (0, 0), which is what inference asks for by default."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from pipeline.lab.shapes.world import IMAGE_SIZE, Scene, render


@dataclasses.dataclass(frozen=True)
class View:
    """How one training picture was made from its scene: drawn at `original` pixels a side (the scene scaled by
    original / 64), then cut at (top, left) to 64 when larger, or scaled up to 64 when smaller."""

    original: int = IMAGE_SIZE
    top: int = 0
    left: int = 0

    @property
    def time_ids(self) -> list[int]:
        """SDXL's six numbers: original (h, w), crop top-left (y, x), target (h, w)."""
        return [self.original, self.original, self.top, self.left, IMAGE_SIZE, IMAGE_SIZE]


def scaled(scene: Scene, factor: float) -> Scene:
    """The scene's geometry scaled about the origin (drawn on a canvas `factor` times the side)."""
    shapes = tuple(dataclasses.replace(s, cx=s.cx * factor, cy=s.cy * factor, radius=s.radius * factor)
                   for s in scene.shapes)
    return dataclasses.replace(scene, shapes=shapes)


def draw(scene: Scene, view: View) -> np.ndarray:
    """The (64, 64, 3) uint8 picture of a scene seen through a view."""
    side = view.original
    image = render(scaled(scene, side / IMAGE_SIZE), side)[0]
    if side > IMAGE_SIZE:
        return np.ascontiguousarray(image[view.top:view.top + IMAGE_SIZE, view.left:view.left + IMAGE_SIZE])
    if side < IMAGE_SIZE:
        return np.asarray(Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
    return image


def random_view(rng: np.random.Generator, crop_share: float, small_share: float, largest: int,
                smallest: int, crop_smallest: int = IMAGE_SIZE + 1) -> View:
    """A crop (a side from `crop_smallest` to `largest`, any offset), a small original (a side from `smallest` to
    63, in steps of 8) or the plain scene, with the given shares."""
    draw_kind = rng.random()
    if draw_kind < crop_share:
        side = int(rng.integers(crop_smallest, largest + 1))
        top, left = (int(v) for v in rng.integers(0, side - IMAGE_SIZE + 1, size=2))
        return View(side, top, left)
    if draw_kind < crop_share + small_share:
        return View(int(rng.choice(np.arange(smallest, IMAGE_SIZE, 8))))
    return View()
