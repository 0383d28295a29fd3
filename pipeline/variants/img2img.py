"""img2img: the input image's latent, noised to the first kept timestep, is denoised for strength x steps."""

from __future__ import annotations

import torch

from pipeline.models.inspect import ModelInfo
from pipeline.common.inputs import fit, read_image
from pipeline.engine.latents import encode, from_pil, initial_noise
from pipeline.engine.loop import LoopSetup
from pipeline.engine.schedulers import add_noise
from pipeline.variants.base import RunContext, check_strength, cut_timesteps, image_size, require_unet_channels


def check(cfg, info: ModelInfo) -> tuple[int, int]:
    """A denoiser that reads the latents alone, a readable image and a strength that leaves steps; the image sets
    the default size."""
    require_unet_channels(info, (info.latent_channels,), cfg.task)
    check_strength(cfg)
    return image_size(cfg, info)


def load_image(ctx: RunContext) -> torch.Tensor:
    """The config's image at the run's size as a (1, 3, H, W) tensor in [-1, 1]."""
    image = fit(read_image(ctx.cfg.image, "image"), ctx.width, ctx.height)
    return from_pil(image).to(ctx.device, ctx.dtype)


def noised_latents(ctx: RunContext, image: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Encode the image once per generator, then add each image's noise at the first kept timestep."""
    latents = encode(ctx.components.vae, image, ctx.generators)
    noise = initial_noise(ctx.generators, ctx.latent_shape, ctx.device, ctx.dtype)
    return add_noise(ctx.scheduler, latents, noise, timesteps[:1].repeat(len(ctx.generators)))


def prepare(ctx: RunContext) -> LoopSetup:
    """Cut the timesteps by strength and start from the noised image latents (diffusers' prepare_latents)."""
    timesteps = cut_timesteps(ctx)
    return LoopSetup(latents=noised_latents(ctx, load_image(ctx), timesteps), timesteps=timesteps)
