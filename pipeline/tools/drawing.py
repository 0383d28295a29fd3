"""Labelled pictures for the tools: grids with row and column labels, captions, colour maps and colour bars."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 128  # small images are enlarged (NEAREST, whole multiples) until their short side reaches this
PAD = 6
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
EMPTY = (200, 200, 200)
# A diverging blue - light grey - red map (negative, zero, positive), as in Moreland's "cool to warm".
COOL_WARM = np.array([(59, 76, 192), (221, 221, 221), (180, 4, 38)], dtype=np.float32)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at a pixel size."""
    return ImageFont.load_default(size=size)


def font_for(tile_height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A label font that stays legible next to a tile of this height."""
    return font(max(12, tile_height // 9))


def enlarge(image: Image.Image, min_side: int = MIN_SIDE) -> Image.Image:
    """Scale a small image up by a whole factor with NEAREST so its pixels stay crisp."""
    factor = max(1, math.ceil(min_side / min(image.size)))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST) if factor > 1 else image


def text_size(text: str, face) -> tuple[int, int]:
    """Width and height a (possibly multi-line) text takes."""
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=face)
    return box[2], box[3]


def placeholder(size: tuple[int, int], text: str) -> Image.Image:
    """A grey tile with a word in it, standing in for an image that could not be made."""
    tile = Image.new("RGB", size, EMPTY)
    face = font_for(size[1])
    width, height = text_size(text, face)
    ImageDraw.Draw(tile).multiline_text(((size[0] - width) // 2, (size[1] - height) // 2), text, INK, face)
    return tile


def grid(
    cells: Sequence[Sequence[Image.Image | str]],
    col_labels: Sequence[str],
    row_labels: Optional[Sequence[str]] = None,
) -> Image.Image:
    """Tiles in rows and columns, labels above the columns and left of the rows; a string cell is a grey tile."""
    tiles = [[enlarge(c) if isinstance(c, Image.Image) else c for c in row] for row in cells]
    present = [t for row in tiles for t in row if isinstance(t, Image.Image)]
    tile_w = max((t.width for t in present), default=MIN_SIDE)
    tile_h = max((t.height for t in present), default=MIN_SIDE)
    face = font_for(tile_h)
    top = max(text_size(label, face)[1] for label in col_labels) + 2 * PAD
    left = max((text_size(label, face)[0] for label in row_labels), default=0) + 2 * PAD if row_labels else 0
    columns = max(len(row) for row in tiles)
    sheet = Image.new("RGB", (left + columns * (tile_w + PAD) + PAD, top + len(tiles) * (tile_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(col_labels):
        x = left + PAD + c * (tile_w + PAD) + (tile_w - text_size(label, face)[0]) // 2
        draw.multiline_text((x, PAD), label, INK, face, align="center")
    for r, row in enumerate(tiles):
        y = top + r * (tile_h + PAD)
        if row_labels:
            height = text_size(row_labels[r], face)[1]
            draw.multiline_text((PAD, y + (tile_h - height) // 2), row_labels[r], INK, face)
        for c, tile in enumerate(row):
            tile = tile if isinstance(tile, Image.Image) else placeholder((tile_w, tile_h), tile)
            sheet.paste(tile, (left + PAD + c * (tile_w + PAD), y), tile if tile.mode == "RGBA" else None)
    return sheet


def stack(images: Sequence[Image.Image]) -> Image.Image:
    """Images one below the other, left-aligned on white."""
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), BACKGROUND)
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    return sheet


def caption(image: Image.Image, text: str) -> Image.Image:
    """The image with a line of text under it."""
    face = font(max(12, min(20, image.width // 30)))
    width, height = text_size(text, face)
    strip = Image.new("RGB", (max(image.width, width + 2 * PAD), height + 2 * PAD), BACKGROUND)
    ImageDraw.Draw(strip).multiline_text((PAD, PAD), text, INK, face)
    return stack([image, strip])


def colour_map(values: np.ndarray, low: float, high: float) -> Image.Image:
    """A 2-D array as an RGB image on the cool-to-warm map, `low` blue, the middle grey, `high` red."""
    span = (high - low) or 1.0
    position = np.clip((values.astype(np.float32) - low) / span, 0, 1) * (len(COOL_WARM) - 1)
    anchors = np.arange(len(COOL_WARM))
    rgb = np.stack([np.interp(position, anchors, COOL_WARM[:, k]) for k in range(3)], axis=-1)
    return Image.fromarray(rgb.round().astype(np.uint8))


def colour_bar(low: float, high: float, width: int) -> Image.Image:
    """A horizontal key for colour_map: the gradient with its low, middle and high values written under it."""
    face = font(14)
    bar = colour_map(np.tile(np.linspace(low, high, width - 2 * PAD), (14, 1)), low, high)
    labels = [f"{low:.2f}", f"{(low + high) / 2:.2f}", f"{high:.2f}"]
    height = bar.height + text_size("0", face)[1] + 3 * PAD
    key = Image.new("RGB", (width, height), BACKGROUND)
    key.paste(bar, (PAD, PAD))
    draw = ImageDraw.Draw(key)
    for fraction, label in zip((0.0, 0.5, 1.0), labels):
        x = PAD + fraction * (bar.width - text_size(label, face)[0])
        draw.text((x, bar.height + 2 * PAD), label, INK, face)
    return key
