"""Reading the user's input images (image, mask, depth map) with one-sentence errors naming the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from .errors import UserError
from .limits import check_image_file


def read_image(path: str | None, key: str, mode: str = "RGB") -> Image.Image:
    """Open an image file named by a config key, converted to `mode`, or say why it cannot be used."""
    if not path:
        raise UserError(f"{key} must name an image file for this task; it is not set.")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{key} file {file} does not exist.")
    check_image_file(file, key)
    try:
        with Image.open(file) as image:
            image.load()
            return image.convert(mode)
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{key} file {file} is not a readable image ({type(err).__name__}).") from None


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """The image at the run's size: unchanged when it already fits, else resized (A1111's 'just resize')."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def mask_array(mask: Image.Image, blur: int) -> np.ndarray:
    """A grayscale mask as floats in [0, 1] (white = repaint), Gaussian-blurred by `blur` pixels when > 0."""
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
