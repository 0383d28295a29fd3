"""inpaint: repaint where the mask is white. Inpainting models (a UNet of 9 channels, SD3's transformer of 33: the
latents, the mask and the masked image's latents) see the mask and masked image as extra input; plain ones (4 or 16
channels, the latents alone) get the known region blended back after every step (diffusers'
StableDiffusionInpaintPipeline, StableDiffusion3InpaintPipeline); with `blend_known`, inpainting models get both, as
AUTOMATIC1111 and ComfyUI's noise mask do."""

from __future__ import annotations

import torch
from PIL import Image

from pipeline.models.inspect import ModelInfo
from pipeline.common.errors import UserError
from pipeline.common.inputs import fit, mask_array, read_image
from pipeline.engine.latents import encode, from_pil, initial_noise, latent_mask
from pipeline.engine.loop import LoopSetup
from pipeline.engine.schedulers import add_noise, noise_sigma
from pipeline.variants.base import (
    RunContext,
    check_strength,
    cut_timesteps,
    image_size,
    input_size,
    require_unet_channels,
)


def check(cfg, info: ModelInfo) -> tuple[int, int]:
    """A plain or inpainting denoiser (4 or 9 channels for SD's VAE, 16 or 33 for SD3's), readable image and mask of
    one size, a usable strength and blur."""
    require_unet_channels(info, (info.latent_channels, 2 * info.latent_channels + 1), cfg.task)
    check_strength(cfg)
    if cfg.mask_blur < 0:
        raise UserError(f"mask_blur must be a number of pixels >= 0; got {cfg.mask_blur}.")
    size = image_size(cfg, info)
    mask_size = input_size(cfg, "mask")
    if mask_size != size:
        raise UserError(f"mask must be the image's size {size[0]}x{size[1]}; got {mask_size[0]}x{mask_size[1]}.")
    return size


def prepare(ctx: RunContext) -> LoopSetup:
    """Read image and mask at the run's size and set the loop up for them."""
    image = fit(read_image(ctx.cfg.image, "image"), ctx.width, ctx.height)
    mask = fit(read_image(ctx.cfg.mask, "mask", mode="L"), ctx.width, ctx.height)
    return prepare_with(ctx, image, mask)


def prepare_with(ctx: RunContext, image: Image.Image, mask: Image.Image) -> LoopSetup:
    """The inpaint set-up for an image and mask in memory (outpaint builds these itself)."""
    cfg, vae, scheduler, gens = ctx.cfg, ctx.components.vae, ctx.scheduler, ctx.generators
    pixels = from_pil(image).to(ctx.device, ctx.dtype)
    soft = torch.from_numpy(mask_array(mask, cfg.mask_blur))[None, None].to(ctx.device, ctx.dtype)
    binary = (soft >= 0.5).to(ctx.dtype)
    timesteps = cut_timesteps(ctx)
    nine_channels = ctx.components.unet.config.in_channels == 2 * ctx.latent_shape[0] + 1  # an inpainting model
    full_strength = cfg.strength == 1.0
    # The order of draws from each generator follows diffusers: image sample, noise, masked-image sample.
    blend = not nine_channels or cfg.blend_known
    known = encode(vae, pixels, gens) if blend or not full_strength else None
    noise = initial_noise(gens, ctx.latent_shape, ctx.device, ctx.dtype)
    if full_strength:
        latents = noise * noise_sigma(scheduler)
    else:
        latents = add_noise(scheduler, known, noise, timesteps[:1].repeat(len(gens)))
    masked = encode(vae, pixels * (binary < 0.5), gens)
    small_mask = latent_mask(binary, ctx.latent_shape[1:]).repeat(len(gens), 1, 1, 1)
    setup = LoopSetup(latents=latents, timesteps=timesteps, finish=_paste_back(pixels, soft) if cfg.keep_unmasked else None)
    if nine_channels:
        setup.model_input = _extra_channels(small_mask, masked)
    if blend:
        setup.after_step = _blend_known(scheduler, known, noise, small_mask, timesteps)
    return setup


def _extra_channels(mask: torch.Tensor, masked: torch.Tensor):
    """model_input hook: append the mask and masked-image latents to each half of the CFG batch."""

    def hook(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        halves = model_in.shape[0] // mask.shape[0]
        return torch.cat([model_in, mask.repeat(halves, 1, 1, 1), masked.repeat(halves, 1, 1, 1)], dim=1)

    return hook


def _blend_known(scheduler, known: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor, timesteps: torch.Tensor):
    """after_step hook: outside the mask, put back the known latents noised to the next timestep."""

    def hook(latents: torch.Tensor, i: int, t: torch.Tensor) -> torch.Tensor:
        proper = known
        if i < len(timesteps) - 1:
            proper = add_noise(scheduler, known, noise, timesteps[i + 1 : i + 2])
        return (1 - mask) * proper + mask * latents

    return hook


def _paste_back(pixels: torch.Tensor, soft_mask: torch.Tensor):
    """finish hook: keep the input's own pixels wherever the (blurred) mask keeps them, as A1111 does."""
    original = (pixels / 2 + 0.5).clamp(0, 1)

    def hook(images: torch.Tensor) -> torch.Tensor:
        return original * (1 - soft_mask) + images * soft_mask

    return hook
