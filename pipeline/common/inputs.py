"""Reading the user's input images (image, mask, depth map) as a viewer shows them, with one-sentence errors.

What a viewer shows: EXIF orientation applied; 16-bit samples scaled to the full range (value / 65535), not
clipped to white; palette, CMYK and YCbCr converted to RGB. A picture with transparent pixels is composited
on white (as AUTOMATIC1111 flattens img2img inputs); a mask or depth map with transparent pixels is refused,
since it is read as one grayscale channel and its transparent parts have no meaning there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from pipeline.common.errors import UserError
from pipeline.common.limits import check_image_file

DEEP = 65535.0  # the full range of 16-bit samples


def _open(path: str | None, key: str) -> Image.Image:
    """The decoded, upright image a config key names, or say why it cannot be used."""
    if not path:
        raise UserError(f"{key} must name an image file for this task; it is not set.")
    file = Path(path)
    if file.is_dir():
        raise UserError(f"{key} file {file} is a directory, not an image.")
    if not file.exists():
        raise UserError(f"{key} file {file} does not exist.")
    if not file.is_file():
        raise UserError(f"{key} file {file} is not a regular file (an image file is needed).")
    check_image_file(file, key)
    try:
        with Image.open(file) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise UserError(f"{key} file {file} has more pixels than can be read safely "
                        f"({2 * Image.MAX_IMAGE_PIXELS} at most).") from None
    except UnidentifiedImageError:
        raise UserError(f"{key} file {file} is not a readable image (not a format Pillow knows).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = str(err).rstrip(".") or type(err).__name__
        raise UserError(f"{key} file {file} is not a readable image ({reason}).") from None


def _deep_gray(image: Image.Image, key: str, path: str) -> np.ndarray | None:
    """Samples of a 16- or 32-bit grayscale image scaled to [0, 1]; None for the 8-bit modes."""
    if image.mode == "F":
        raise UserError(f"{key} file {path} has floating-point samples; save it as an 8- or 16-bit image.")
    if not image.mode.startswith("I"):
        return None
    values = np.asarray(image, dtype=np.float64)
    if values.min() < 0 or values.max() > DEEP:
        raise UserError(f"{key} file {path} has 32-bit samples outside 0..65535; save it as an 8- or 16-bit image.")
    return (values / DEEP).astype(np.float32)


def _opacity(image: Image.Image) -> np.ndarray | None:
    """Per-pixel opacity in [0, 1] (alpha channel or transparent colour), or None when every pixel is opaque."""
    if not image.has_transparency_data:
        return None
    if image.mode.startswith("I"):
        alpha = (np.asarray(image) != image.info["transparency"]).astype(np.float32)
    else:
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return None if alpha.min() == 1.0 else alpha


def read_grayscale(path: str | None, key: str) -> np.ndarray:
    """A mask or depth map as one float32 channel in [0, 1] at its full precision (16-bit files keep theirs)."""
    image = _open(path, key)
    if _opacity(image) is not None:
        raise UserError(f"{key} file {path} has transparent pixels; save it without transparency "
                        f"(a {key} is read as one grayscale channel).")
    deep = _deep_gray(image, key, path)
    if deep is not None:
        return deep
    return np.asarray(image.convert("L") if image.mode in ("1", "L", "LA") else image.convert("RGB").convert("L"),
                      dtype=np.float32) / 255.0


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8, rounded."""
    return np.round(values * 255.0).astype(np.uint8)


def read_image(path: str | None, key: str, mode: str = "RGB") -> Image.Image:
    """An input image as a viewer shows it: RGB (transparency composited on white), or for mode 'L' the
    8-bit grayscale form of a mask (see read_grayscale)."""
    if mode == "L":
        return Image.fromarray(_to_8bit(read_grayscale(path, key)))
    image = _open(path, key)
    alpha = _opacity(image)
    deep = _deep_gray(image, key, path)
    if alpha is None and deep is None:
        return image.convert("RGB")
    rgb = np.repeat(deep[..., None], 3, axis=2) if deep is not None else (
        np.asarray(image.convert("RGBA").convert("RGB"), dtype=np.float32) / 255.0)
    if alpha is not None:
        rgb = rgb * alpha[..., None] + (1.0 - alpha[..., None])  # over white
    return Image.fromarray(_to_8bit(rgb))


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
