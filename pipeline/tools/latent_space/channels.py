"""channels: an image's latent as one colour-mapped tile per channel with a colour bar, and as an RGB(A) preview."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from pipeline.tools.drawing import caption, colour_bar, colour_map, enlarge, grid, stack
from pipeline.tools.run_folder import save_png
from pipeline.tools.latent_space.common import ToolResult, encoded_config_image, start_run

def channel_ranges(latents: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum over one or more (1, C, h, w) latents, for a shared normalisation."""
    values = torch.cat([l.float().cpu() for l in latents]).transpose(0, 1).flatten(1)
    return values.min(dim=1).values.numpy(), values.max(dim=1).values.numpy()


def latent_preview(latent: torch.Tensor, ranges: Optional[tuple[np.ndarray, np.ndarray]] = None) -> Image.Image:
    """Each channel normalised to [0, 255] over `ranges` (its own by default), shown as L, RGB or RGBA (first 4)."""
    array = latent[0, :4].float().cpu().numpy()
    low, high = ranges if ranges is not None else channel_ranges([latent])
    low, high = low[: len(array), None, None], high[: len(array), None, None]
    scaled = np.clip((array - low) / np.where(high > low, high - low, 1), 0, 1)
    pixels = (scaled * 255).round().astype(np.uint8)
    if len(pixels) == 2:
        pixels = np.concatenate([pixels, np.zeros_like(pixels[:1])])
    return Image.fromarray(pixels[0] if len(pixels) == 1 else np.ascontiguousarray(np.moveaxis(pixels, 0, -1)))


def channel_panel(latent: torch.Tensor) -> Image.Image:
    """One tile per channel on a shared symmetric scale (blue negative, red positive), a colour bar under them."""
    array = latent[0].float().cpu().numpy()
    bound = float(np.abs(array).max()) or 1.0
    tiles = [colour_map(channel, -bound, bound) for channel in array]
    sheet = grid([tiles], [f"channel {c}" for c in range(len(tiles))])
    return stack([sheet, colour_bar(-bound, bound, sheet.width)])


def channels(cfg: DictConfig) -> ToolResult:
    """Write the channel panel and the RGB(A) preview of `image`'s latent; report each channel's mean and std."""
    plan, vae, image, latent = encoded_config_image(cfg)
    preview = latent_preview(latent).resize(image.size, Image.NEAREST)
    shape = "x".join(str(n) for n in latent.shape[1:])
    panel = caption(channel_panel(latent), f"latent {shape} of {image.width}x{image.height} image (scaled by the VAE's "
                                           f"scaling_factor {vae.config.scaling_factor:g})")
    folder, files = start_run(cfg, plan.output_dir, "channels")
    files["panel"] = save_png(panel, folder, "channels.png")
    files["preview"] = save_png(enlarge(preview), folder, "preview.png")
    numbers = {}
    for c, values in enumerate(latent[0].float().cpu()):
        numbers[f"channel_{c}_mean"], numbers[f"channel_{c}_std"] = float(values.mean()), float(values.std())
    return ToolResult(folder, files, numbers)
