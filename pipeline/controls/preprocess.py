"""Control-image preprocessors: the picture a ControlNet reads, made from the image a config entry names."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image

CANNY_THRESHOLDS = (100, 200)  # low and high, as diffusers' ControlNet docs call cv2.Canny
PREPROCESSORS = ("none", "canny")


def check_preprocessor(name: str, key: str) -> None:
    """A known preprocessor, or one sentence naming the choices (depth is not offered yet)."""
    if name == "depth":
        raise UserError(f"{key}.preprocessor depth is not available yet; give a depth map as {key}.image with "
                        "preprocessor none.")
    if name not in PREPROCESSORS:
        raise UserError(f"{key}.preprocessor must be one of {', '.join(PREPROCESSORS)}; got '{name}'.")


def canny(image: Image.Image) -> Image.Image:
    """OpenCV's Canny edges of the picture as a 3-channel white-on-black map (diffusers' ControlNet docs)."""
    import cv2

    edges = cv2.Canny(np.asarray(image), *CANNY_THRESHOLDS)
    return Image.fromarray(np.repeat(edges[:, :, None], 3, axis=2))


def control_map(image_path: str, preprocessor: str, key: str) -> Image.Image:
    """The control map of one entry: the image read as every input is (EXIF, 16-bit, transparency), then its
    preprocessor applied."""
    image = read_image(image_path, f"{key}.image")
    return canny(image) if preprocessor == "canny" else image
