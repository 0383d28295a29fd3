"""The shapes world's layout map, what the tiny-shapes ControlNet reads: each shape of a scene filled white on black.

A flat silhouette, not an edge map, because at 64x64 a shape's outline is a one-pixel, anti-alias-free line that a
resize breaks, while a filled silhouette carries the shape, size and place whole and leaves the colours to the
prompt; it is also what a person draws in any paint program (docs/shapes-model.md, "The ControlNet")."""

import numpy as np

from pipeline.lab.shapes.world import IMAGE_SIZE, Scene, shape_mask

WHITE = 255


def layout_mask(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """The pixels any of the scene's shapes covers, as an (H, W) boolean mask."""
    mask = np.zeros((size, size), dtype=bool)
    for shape in scene.shapes:
        mask |= shape_mask(shape, size)
    return mask


def layout_map(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """The scene's layout map: an (H, W, 3) uint8 image, shapes white on black."""
    return np.repeat(layout_mask(scene, size)[:, :, None], 3, axis=2).astype(np.uint8) * WHITE


def layout_batch(scenes: list[Scene], size: int = IMAGE_SIZE) -> np.ndarray:
    """Many layout maps as an (N, 3, H, W) float32 array in [0, 1], as a ControlNet pipeline feeds its images."""
    return np.stack([layout_mask(scene, size) for scene in scenes])[:, None].repeat(3, axis=1).astype(np.float32)
