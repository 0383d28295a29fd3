"""The procedural world: seeded 64x64 scenes of coloured shapes, their pixels and depth maps."""

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 215, 50),
    "purple": (160, 50, 200),
    "white": (240, 240, 240),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 9.0, "large": 16.0}
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (32.0, 32.0),
    "left": (17.0, 32.0),
    "right": (47.0, 32.0),
    "top": (32.0, 17.0),
    "bottom": (32.0, 47.0),
}
RELATIONS: dict[str, tuple[str, str]] = {
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
    "to the left of": ("left", "right"),
    "to the right of": ("right", "left"),
}
IMAGE_SIZE = 64


@dataclass(frozen=True)
class Variation:
    """How much a scene varies beyond what its caption says (uniform +- amounts): the place of each shape
    (px), its radius (px) and every colour's shade (per RGB channel; shades stay nearer their own palette
    colour than any other); `apart`: two shapes in a relation jitter only away from each other.
    Version 1 of the shipped model was trained on V1_VARIATION (the same scenes for the same seeds)."""

    position: float = 4.0
    radius: float = 1.5
    shade: int = 20
    apart: bool = True


VARIATION = Variation()
V1_VARIATION = Variation(2.0, 1.0, 0, apart=False)


@dataclass(frozen=True)
class Shape:
    """One shape of a scene: its attributes, its exact geometry and its depth (1 = nearest)."""

    kind: str
    colour: str
    size: str
    position: str
    cx: float
    cy: float
    radius: float
    depth: float
    shade: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class Scene:
    """A plain background and one or two shapes; `relation` places shapes[0] against shapes[1]."""

    background: str
    shapes: tuple[Shape, ...]
    relation: str | None = None
    background_shade: tuple[int, int, int] = (0, 0, 0)


def _shade(rng: np.random.Generator, variation: Variation) -> tuple[int, int, int]:
    """A per-channel offset from a palette colour (no draw at all when shades do not vary)."""
    if variation.shade == 0:
        return (0, 0, 0)
    return tuple(int(v) for v in rng.integers(-variation.shade, variation.shade + 1, size=3))  # type: ignore[return-value]


def _shape(
    rng: np.random.Generator, colour: str, position: str, depth: float, variation: Variation,
    away: tuple[float, float] = (0.0, 0.0),
) -> Shape:
    """Draw a shape's kind, size and the jitter of its place, extent and shade; along an axis where `away`
    is non-zero the place moves only that way (two shapes in a relation never jitter into each other)."""
    size = str(rng.choice(list(SIZES)))
    cx, cy = POSITIONS[position]
    unit = rng.uniform(-1.0, 1.0, size=3)
    unit[:2] = [abs(u) * np.sign(a) if a else u for u, a in zip(unit[:2], away)]
    return Shape(
        kind=str(rng.choice(SHAPES)), colour=colour, size=size, position=position,
        cx=cx + variation.position * unit[0], cy=cy + variation.position * unit[1],
        radius=SIZES[size] + variation.radius * unit[2], depth=depth, shade=_shade(rng, variation),
    )


def random_scene(
    rng: np.random.Generator, two_shape_share: float = 0.25, variation: Variation | None = None
) -> Scene:
    """Draw one scene; a share `two_shape_share` of scenes holds two shapes in a relation."""
    names, variation = list(COLOURS), variation or VARIATION
    if rng.random() >= two_shape_share:
        colour, background = (str(c) for c in rng.choice(names, size=2, replace=False))
        position = str(rng.choice(list(POSITIONS)))
        shape = _shape(rng, colour, position, float(rng.uniform(0.5, 1.0)), variation)
        return Scene(background, (shape,), background_shade=_shade(rng, variation))
    first, second, background = (str(c) for c in rng.choice(names, size=3, replace=False))
    relation = str(rng.choice(list(RELATIONS)))
    near, far = float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.3, 0.55))
    depths = (near, far) if rng.random() < 0.5 else (far, near)
    places = RELATIONS[relation]
    away = np.subtract(POSITIONS[places[0]], POSITIONS[places[1]]) * variation.apart
    shapes = (_shape(rng, first, places[0], depths[0], variation, tuple(away)),
              _shape(rng, second, places[1], depths[1], variation, tuple(-away)))
    return Scene(background, shapes, relation, background_shade=_shade(rng, variation))


def make_scenes(
    seed: int, count: int, two_shape_share: float = 0.25, variation: Variation | None = None
) -> list[Scene]:
    """Make `count` scenes, the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    return [random_scene(rng, two_shape_share, variation) for _ in range(count)]


def paint(colour: str, shade: tuple[int, int, int]) -> np.ndarray:
    """A palette colour moved by its shade, as uint8 RGB."""
    return np.clip(np.add(COLOURS[colour], shade), 0, 255).astype(np.uint8)


def shape_mask(shape: Shape, size: int = IMAGE_SIZE) -> np.ndarray:
    """Boolean pixel mask of a shape (pixel centres at integer + 0.5)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xs - shape.cx, ys - shape.cy
    r = shape.radius
    if shape.kind == "circle":
        return dx * dx + dy * dy <= r * r
    if shape.kind == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    # upward triangle: apex at (cx, cy - r), base from cx - r to cx + r at cy + r
    return (dy <= r) & (np.abs(dx) <= (dy + r) / 2.0)


def render(scene: Scene, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Paint a scene: an (H, W, 3) uint8 image and an (H, W) float32 depth map, nearer brighter."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = paint(scene.background, scene.background_shade)
    depth = np.zeros((size, size), dtype=np.float32)
    for shape in sorted(scene.shapes, key=lambda s: s.depth):
        mask = shape_mask(shape, size)
        image[mask] = paint(shape.colour, shape.shade)
        depth[mask] = shape.depth
    return image, depth


def render_batch(scenes: list[Scene], size: int = IMAGE_SIZE) -> np.ndarray:
    """Paint many scenes into an (N, 3, H, W) float32 array in [-1, 1], as the VAE takes them."""
    images = np.stack([render(scene, size)[0] for scene in scenes])
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
