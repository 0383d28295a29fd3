"""txt2img: start from pure noise scaled by the scheduler's init_noise_sigma (1 for flow matching) and visit every
timestep."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from pipeline.models.inspect import ModelInfo
from pipeline.engine.latents import initial_noise
from pipeline.engine.loop import LoopSetup
from pipeline.engine.schedulers import noise_sigma
from pipeline.variants.base import RunContext, require_unet_channels, set_timesteps


log = logging.getLogger("pipeline")


def check(cfg, info: ModelInfo) -> None:
    """txt2img needs a denoiser that reads the latents alone (4 channels for SD's VAE, 16 for SD3's); the size
    defaults to the model's. A strength set away from its
    default is named in a warning: txt2img starts from pure noise and ignores it."""
    require_unet_channels(info, (info.latent_channels,), cfg.task)
    if cfg.strength != OmegaConf.get_type(cfg).strength:  # the schema's default
        log.warning(f"strength {cfg.strength:g} is ignored by task txt2img, which starts from pure noise; it is used "
                    "by img2img, inpaint, outpaint and depth2img.")


def prepare(ctx: RunContext) -> LoopSetup:
    """Noise from each image's generator (as diffusers' prepare_latents), or the given noise, and all timesteps."""
    set_timesteps(ctx)
    noise = ctx.noise if ctx.noise is not None else initial_noise(ctx.generators, ctx.latent_shape, ctx.device, ctx.dtype)
    return LoopSetup(latents=noise * noise_sigma(ctx.scheduler), timesteps=ctx.scheduler.timesteps)
