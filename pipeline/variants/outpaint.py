"""outpaint: pad the image, mask the new border, and inpaint it; the whole variant is this one file."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.models.inspect import ModelInfo
from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image
from pipeline.common.limits import MAX_SIDE
from pipeline.engine.loop import LoopSetup
from pipeline.variants import inpaint
from pipeline.variants.base import RunContext, check_own_size, check_strength, input_size, require_unet_channels

SIDES = ("left", "right", "top", "bottom")


def padded_size(cfg, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the image once the outpaint padding is added."""
    pad = cfg.outpaint
    return size[0] + pad.left + pad.right, size[1] + pad.top + pad.bottom


def check(cfg, info: ModelInfo) -> tuple[int, int]:
    """An inpaint-capable UNet, a readable image and non-negative padding on at least one side."""
    require_unet_channels(info, (info.latent_channels, 2 * info.latent_channels + 1), cfg.task)
    check_strength(cfg)
    for side in SIDES:
        if cfg.outpaint[side] < 0:
            raise UserError(f"outpaint.{side} must be a number of pixels >= 0; got {cfg.outpaint[side]}.")
        if cfg.outpaint[side] > MAX_SIDE:
            raise UserError(f"outpaint.{side} must be at most {MAX_SIDE} pixels; got {cfg.outpaint[side]}.")
    if not any(cfg.outpaint[side] for side in SIDES):
        raise UserError("outpaint needs padding on at least one side (outpaint.left/right/top/bottom); all are 0.")
    size = padded_size(cfg, input_size(cfg))
    for (first, second), value, what in ((SIDES[:2], size[0], "wide"), (SIDES[2:], size[1], "high")):
        if value > MAX_SIDE:
            raise UserError(f"outpaint.{first} and outpaint.{second} make the image {value} pixels {what}; the "
                            f"outpainted size may be at most {MAX_SIDE}.")
    if (cfg.width, cfg.height) not in ((None, None), size):
        raise UserError(f"outpaint sets the size itself ({size[0]}x{size[1]}); leave height and width unset.")
    return check_own_size(cfg, info, size, f"image file {cfg.image} with the outpaint padding",
                          "change outpaint.left/right/top/bottom")


def pad(image: Image.Image, cfg) -> tuple[Image.Image, Image.Image]:
    """The image with its edge pixels stretched into the padding, and a mask white on the padding only."""
    p = cfg.outpaint
    pixels = np.pad(np.asarray(image), ((p.top, p.bottom), (p.left, p.right), (0, 0)), mode="edge")
    mask = np.full(pixels.shape[:2], 255, dtype=np.uint8)
    mask[p.top : p.top + image.height, p.left : p.left + image.width] = 0
    return Image.fromarray(pixels), Image.fromarray(mask, mode="L")


def prepare(ctx: RunContext) -> LoopSetup:
    """Pad the configured image and hand image + border mask to inpaint."""
    image, mask = pad(read_image(ctx.cfg.image, "image"), ctx.cfg)
    return inpaint.prepare_with(ctx, image, mask)
