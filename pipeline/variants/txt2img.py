"""txt2img: start from pure noise scaled by the scheduler's init_noise_sigma and visit every timestep."""

from __future__ import annotations

from ..components import ModelInfo
from ..latents import initial_noise
from ..loop import LoopSetup
from .base import RunContext, require_unet_channels


def check(cfg, info: ModelInfo) -> None:
    """txt2img needs a plain 4-channel UNet; the size defaults to the model's."""
    require_unet_channels(info, (4,), cfg.task)


def prepare(ctx: RunContext) -> LoopSetup:
    """Noise from each image's generator (as diffusers' prepare_latents), or the given noise, and all timesteps."""
    ctx.scheduler.set_timesteps(ctx.cfg.steps, device=ctx.device)
    noise = ctx.noise if ctx.noise is not None else initial_noise(ctx.generators, ctx.latent_shape, ctx.device, ctx.dtype)
    return LoopSetup(latents=noise * ctx.scheduler.init_noise_sigma, timesteps=ctx.scheduler.timesteps)
