"""Bounds on every size and count that could exhaust memory or time, checked before any weights load.

Each limit is far above what a real run asks for; each is named in the README and in the refusal.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from pipeline.common.errors import UserError

MAX_STEPS = 1000  # inference steps: Stable Diffusion's training timesteps (and at most the scheduler's own count)
MAX_NUM_IMAGES = 10_000  # images in one run
MAX_BATCH_SIZE = 64  # images in one UNet batch
MAX_SIDE = 4096  # pixels per side of a generated image, the outpainted size included
MAX_INPUT_PIXELS = 8192 * 8192  # pixels of an input image, read from its header before it is decoded
MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed takes
MAX_LIST = 64  # entries of a list that multiplies the work: compare axes, latents.noise_levels
MAX_CELLS = 1024  # cells of one scheduler comparison
MAX_FRAMES = 256  # latents.frames
MAX_FRAME_MS = 655_350  # a GIF stores a frame's duration as 16 bits of centiseconds
MAX_SHEET_PIXELS = 2**27  # a grid or strip picture: 134 million pixels, about 400 MB as RGB

SHEET_TILE = 128  # the short side small tiles are enlarged to on a sheet (drawing.MIN_SIDE)


def _at_most(key: str, value: int, limit: int, what: str = "") -> None:
    """One sentence naming the key when a count is above its limit."""
    if value > limit:
        raise UserError(f"{key} must be at most {limit}{what}; got {value}.")


def check_counts(cfg: DictConfig) -> None:
    """steps, num_images, batch_size and the seeds a run uses, against their limits."""
    _at_most("steps", cfg.steps, MAX_STEPS)
    _at_most("num_images", cfg.num_images, MAX_NUM_IMAGES)
    _at_most("batch_size", cfg.batch_size, MAX_BATCH_SIZE, " (images per UNet batch)")
    if cfg.seed < 0:  # config.load has already made a negative seed random; this is a config built by hand
        raise UserError(f"seed must be an integer >= 0 here (config.load makes a negative seed random); "
                        f"got {cfg.seed}.")
    last = MAX_SEED - (cfg.num_images - 1)
    _at_most("seed", cfg.seed, last, " (image i uses seed + i, and 2^64 - 1 is the largest seed)")


def check_side(key: str, value: int, source: str = "") -> None:
    """A generated image's side against MAX_SIDE; `source` says where the value came from."""
    if value > MAX_SIDE:
        raise UserError(f"{key} must be at most {MAX_SIDE} pixels; got {value}{source}.")


def check_list(key: str, values: list) -> None:
    """A list that multiplies the work, against MAX_LIST entries."""
    if len(values) > MAX_LIST:
        raise UserError(f"{key} may have at most {MAX_LIST} entries; got {len(values)}.")


def tile_size(width: int, height: int) -> tuple[int, int]:
    """The size a width x height image takes on a sheet, small images being enlarged by a whole factor."""
    factor = max(1, math.ceil(SHEET_TILE / max(1, min(width, height))))
    return width * factor, height * factor


def check_sheet(what: str, tiles: int, width: int, height: int) -> None:
    """A picture of `tiles` images of width x height must stay under MAX_SHEET_PIXELS."""
    tile_w, tile_h = tile_size(width, height)
    pixels = tiles * tile_w * tile_h
    if pixels > MAX_SHEET_PIXELS:
        raise UserError(
            f"{what} would be a picture of {tiles} tiles of {tile_w}x{tile_h} ({pixels} pixels); "
            f"at most {MAX_SHEET_PIXELS} pixels are allowed, so use fewer tiles or smaller images."
        )


def check_image_file(file: Path, key: str) -> tuple[int, int] | None:
    """Read only the image's header and refuse it, before anything decodes it, if it has too many pixels.

    Returns (width, height), or None when the header cannot be read (the caller's reading reports that).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise UserError(
            f"{key} file {file} declares more than {MAX_INPUT_PIXELS} pixels in its header, "
            f"the limit for input images (8192x8192); it was not decoded."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        return None  # not an image the header can be read from: the caller's own reading says why
    if width * height > MAX_INPUT_PIXELS:
        raise UserError(
            f"{key} file {file} is {width}x{height} ({width * height} pixels); input images may have at most "
            f"{MAX_INPUT_PIXELS} pixels (8192x8192)."
        )
    return width, height
