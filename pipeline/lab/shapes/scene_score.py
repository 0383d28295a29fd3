"""Pixel scores of an image against the whole Scene a prompt describes: colours, shapes, sizes, places, relation."""

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.lab.shapes.evaluate import NAMES, nearest_colour, pixels, shape_class
from pipeline.lab.shapes.world import POSITIONS, RELATIONS, SIZES, Scene

MIN_PIXELS = 6  # regions smaller than this are edge fringes or specks, not shapes
SIZE_SPLIT = sum(SIZES.values()) / 2  # half-extents below this read as "small"


@dataclass(frozen=True)
class Region:
    """The largest connected region of one palette colour: its mask, centre, half-extent and shape class."""

    mask: np.ndarray
    cx: float
    cy: float
    half_extent: float
    kind: str


def background_index(labels: np.ndarray) -> int:
    """The commonest palette colour on the image's border."""
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return int(np.bincount(border, minlength=len(NAMES)).argmax())


def colour_region(labels: np.ndarray, colour: str) -> Region | None:
    """The largest connected region of pixels nearest `colour`, holes filled; None if none is big enough."""
    parts, count = ndimage.label(labels == NAMES.index(colour))
    if count == 0:
        return None
    sizes = np.bincount(parts.ravel())[1:]
    if sizes.max() < MIN_PIXELS:
        return None
    mask = ndimage.binary_fill_holes(parts == int(sizes.argmax()) + 1)
    ys, xs = np.nonzero(mask)
    # the bounding box's centre is the world's (cx, cy) for every kind; a triangle's centroid is not
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    half = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / 2
    return Region(mask, float(cx), float(cy), float(half), shape_class(mask))


def nearest_position(cx: float, cy: float) -> str:
    """The world's named position nearest a point."""
    return min(POSITIONS, key=lambda p: (POSITIONS[p][0] - cx) ** 2 + (POSITIONS[p][1] - cy) ** 2)


def relation_holds(first: Region, second: Region, relation: str) -> bool:
    """Whether `first` stands in `relation` to `second`: the right direction along the dominant axis."""
    dx, dy = first.cx - second.cx, first.cy - second.cy
    want_x, want_y = np.subtract(POSITIONS[RELATIONS[relation][0]], POSITIONS[RELATIONS[relation][1]])
    if want_x == 0:
        return bool(abs(dy) > abs(dx) and np.sign(dy) == np.sign(want_y))
    return bool(abs(dx) > abs(dy) and np.sign(dx) == np.sign(want_x))


def score_scene(
    image: Image.Image | np.ndarray, scene: Scene, with_size: bool = True, with_place: bool = True,
    with_background: bool = True,
) -> dict[str, bool]:
    """Whether the image shows each attribute the prompt names; attributes left out are not scored.

    One shape: colour, shape, size, position, background. Two shapes: colour (both present), shape
    (both right), size (both right), relation (from the regions' centres), background.
    """
    labels = nearest_colour(pixels(image))
    regions = [colour_region(labels, shape.colour) for shape in scene.shapes]
    found = [r for r in regions if r is not None]
    scores = {
        "colour": len(found) == len(regions),
        "shape": all(r is not None and r.kind == s.kind for r, s in zip(regions, scene.shapes)),
    }
    if with_size:
        scores["size"] = all(r is not None and (r.half_extent < SIZE_SPLIT) == (s.size == "small")
                             for r, s in zip(regions, scene.shapes))
    if with_place and scene.relation is None:
        scores["position"] = regions[0] is not None and nearest_position(regions[0].cx, regions[0].cy) == \
            scene.shapes[0].position
    if with_place and scene.relation is not None:
        scores["relation"] = len(found) == 2 and relation_holds(regions[0], regions[1], scene.relation)
    if with_background:
        scores["background"] = NAMES[background_index(labels)] == scene.background
    return scores
