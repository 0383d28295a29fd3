"""Stage 6: the inpainting model. The trained UNet gets five more input channels (the mask and the masked image's
latents, zero-initialised, as Stable Diffusion's inpainting checkpoints were made from their base models) and is
fine-tuned on random boxes and blobs as masks, a share of them covering the whole image (plain text-to-image).
The kept region's error may weigh more (`kept_weight`): the model then learns to reproduce what it is given exactly,
so the repainted region meets it without a step at the mask's edge."""

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from pipeline.engine.latents import latent_mask
from pipeline.lab.shapes.sibling_train import fine_tune
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.world import IMAGE_SIZE, Scene, render_batch


def random_mask(rng: np.random.Generator, full_share: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """A (size, size) float mask, 1 = repaint: the whole image, a box, or a blob of 2-4 overlapping ellipses."""
    draw = rng.random()
    if draw < full_share:
        return np.ones((size, size), np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if draw < full_share + (1 - full_share) / 2:
        w, h = rng.uniform(12, 48, size=2)
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        return ((xs >= x0) & (xs < x0 + w) & (ys >= y0) & (ys < y0 + h)).astype(np.float32)
    mask = np.zeros((size, size), bool)
    centre = rng.uniform(16, size - 16, size=2)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = centre + rng.uniform(-10, 10, size=2)
        rx, ry = rng.uniform(6, 18, size=2)
        mask |= ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    return mask.astype(np.float32)


@torch.no_grad()
def inpaint_channels(
    vae: AutoencoderKL, scenes: list[Scene], masks: np.ndarray, latent_hw: tuple[int, int]
) -> torch.Tensor:
    """Mask and masked-image latents, as the inpaint variant feeds a 9-channel UNet (masked pixels set to 0)."""
    pixels = torch.from_numpy(render_batch(scenes))
    mask = torch.from_numpy(masks)[:, None]
    masked = vae.encode(pixels * (mask < 0.5)).latent_dist.mean * vae.config.scaling_factor
    return torch.cat([latent_mask(mask, latent_hw), masked], dim=1)


def kept_region_weights(extras: torch.Tensor, kept_weight: float, edge_weight: float = 1.0) -> torch.Tensor:
    """The loss's (B, 1, h, w) weights from the inpainting channels (channel 0 the latent mask, 1 = repaint):
    1 inside the mask, `kept_weight` outside, `edge_weight` on the repainted cells next to a kept one (where a
    repainted background has to meet the kept one's shade)."""
    mask = extras[:, :1]
    edge = mask * torch.nn.functional.max_pool2d(1.0 - mask, 3, stride=1, padding=1)
    return 1.0 + (kept_weight - 1.0) * (1.0 - mask) + (edge_weight - 1.0) * edge


def train_inpaint(config: TrainConfig, run_dir: Path, latents: torch.Tensor) -> None:
    """Fine-tune (or resume) the inpainting UNet from the exported model and export it beside it."""
    spec, hw = config.inpaint, tuple(latents.shape[-2:])
    vae = AutoencoderKL.from_pretrained(Path(config.export_dir) / "vae", torch_dtype=torch.float32)
    vae.requires_grad_(False)

    def channels(step: int, picked: list[Scene]) -> torch.Tensor:
        rng = np.random.default_rng([config.seed, 7, step])
        masks = np.stack([random_mask(rng, spec.full_mask_share) for _ in picked])
        return inpaint_channels(vae, picked, masks, hw)

    fine_tune(config, run_dir, latents, spec, "inpaint", 5, channels,
              lambda extras: kept_region_weights(extras, spec.kept_weight, spec.edge_weight))
