"""roundtrip: image -> VAE encode -> decode; the reconstruction, its error and the VAE's compression factor."""

from __future__ import annotations

import math

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from pipeline.tools.drawing import caption, grid
from pipeline.tools.run_folder import save_png
from pipeline.tools.latent_space.common import ToolResult, decode_image, encoded_config_image, start_run

DIFFERENCE_GAIN = 4  # the difference panel is |original - reconstruction| x this, so small errors show


def psnr(original: Image.Image, reconstruction: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit RGB images (inf when they are equal)."""
    a = np.asarray(original.convert("RGB"), np.float64) / 255
    b = np.asarray(reconstruction.convert("RGB"), np.float64) / 255
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def compression(image: Image.Image, latent: torch.Tensor) -> float:
    """Pixel values per latent element: H x W x 3 / (C x h x w); 48 for Stable Diffusion's VAE."""
    return image.width * image.height * 3 / latent[0].numel()


def difference(original: Image.Image, reconstruction: Image.Image, gain: int = DIFFERENCE_GAIN) -> Image.Image:
    """The per-pixel absolute error, amplified by `gain` and clipped."""
    a = np.asarray(original.convert("RGB"), np.int16)
    b = np.asarray(reconstruction.convert("RGB"), np.int16)
    return Image.fromarray(np.clip(np.abs(a - b) * gain, 0, 255).astype(np.uint8))


def roundtrip(cfg: DictConfig) -> ToolResult:
    """Encode `image` (mean, or a sample with `seed`), decode it, and write original | reconstruction | difference."""
    plan, vae, image, latent = encoded_config_image(cfg)
    reconstruction = decode_image(vae, latent)
    score, factor = psnr(image, reconstruction), compression(image, latent)
    shape = "x".join(str(n) for n in latent.shape[1:])
    panel = grid([[image, reconstruction, difference(image, reconstruction)]],
                 ["original", "reconstruction", f"difference x{DIFFERENCE_GAIN}"])
    mode = f"sample (seed {cfg.seed})" if cfg.latents.sample else "mean"
    size = f"{image.width}x{image.height}x3"
    panel = caption(panel, f"PSNR {score:.2f} dB; {size} -> {shape} latent ({mode}): {factor:g}x fewer values")
    folder, files = start_run(cfg, plan.output_dir, "roundtrip")
    files["panel"] = save_png(panel, folder, "roundtrip.png")
    files["reconstruction"] = save_png(reconstruction, folder, "reconstruction.png")
    return ToolResult(folder, files, {"psnr_db": score, "compression": factor})
