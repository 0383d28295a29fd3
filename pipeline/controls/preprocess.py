"""Control-image preprocessors: the picture a ControlNet reads, made from the image a config entry names."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from pipeline.common.errors import UserError
from pipeline.common.inputs import fit, read_image
from pipeline.controls.depth_map import depth_map

ASPECT_TOLERANCE = 0.01  # relative: a control image resized to the run may stretch this much

CANNY_THRESHOLDS = (100, 200)  # low and high, as diffusers' ControlNet docs call cv2.Canny
PREPROCESSORS = ("none", "canny", "depth", "inpaint")


def check_preprocessor(name: str, key: str, task: str) -> None:
    """A known preprocessor that fits the task, or one sentence naming the choices."""
    if name not in PREPROCESSORS:
        raise UserError(f"{key}.preprocessor must be one of {', '.join(PREPROCESSORS)}; got '{name}'.")
    if name == "inpaint" and task != "inpaint":
        raise UserError(f"{key}.preprocessor inpaint needs task inpaint (its mask marks the pixels the ControlNet "
                        f"sees as masked); task is {task}.")


def canny(image: Image.Image) -> Image.Image:
    """OpenCV's Canny edges of the picture as a 3-channel white-on-black map (diffusers' ControlNet docs)."""
    import cv2

    edges = cv2.Canny(np.asarray(image), *CANNY_THRESHOLDS)
    return Image.fromarray(np.repeat(edges[:, :, None], 3, axis=2))


def control_map(image_path: str, preprocessor: str, key: str, estimator: Optional[tuple[Any, Any]] = None
                ) -> Image.Image:
    """The control map of one entry: the image read as every input is (EXIF, 16-bit, transparency), then its
    preprocessor applied (depth: with the loaded estimator and its image processor)."""
    image = read_image(image_path, f"{key}.image")
    if preprocessor == "canny":
        return canny(image)
    if preprocessor == "depth":
        return depth_map(image, *estimator)
    return image


def inpaint_condition(image_path: str, mask_path: str, key: str, size: tuple[int, int]) -> torch.Tensor:
    """An inpaint ControlNet's input at `size` (width, height): the picture in [0, 1] with the masked pixels (mask
    above one half) set to -1, as diffusers' ControlNet inpaint example makes it; a (1, 3, H, W) tensor."""
    image = np.asarray(fit(read_image(image_path, f"{key}.image"), *size), dtype=np.float32) / 255.0
    mask = np.asarray(fit(read_image(mask_path, "mask", mode="L"), *size), dtype=np.float32) / 255.0
    image = np.where(mask[:, :, None] > 0.5, -1.0, image).astype(np.float32)
    return torch.from_numpy(image.transpose(2, 0, 1)[None].copy())


def check_aspect(size: tuple[int, int], run: tuple[int, int], key: str, path: str) -> None:
    """The control image's aspect equals the run's (it is resized to the run's size, as diffusers does)."""
    if not math.isclose(size[0] / size[1], run[0] / run[1], rel_tol=ASPECT_TOLERANCE):
        raise UserError(f"{key}.image {path} is {size[0]}x{size[1]}, another aspect than the run's {run[0]}x{run[1]}; "
                        "crop it to the run's aspect or set width and height to match it.")
