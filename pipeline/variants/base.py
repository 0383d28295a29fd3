"""What every variant receives, and the checks and timestep cut that several variants share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from pipeline.models.components import Components
from pipeline.models.inspect import ModelInfo
from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image
from pipeline.engine.schedulers import FLOW, NOISE


@dataclass
class RunContext:
    """One batch of one run, as a variant's prepare() sees it."""

    cfg: Any
    components: Components
    scheduler: Any
    generators: list[torch.Generator]
    height: int
    width: int
    noise: Optional[torch.Tensor] = None

    @property
    def device(self) -> torch.device:
        """Where the latents live."""
        return self.components.device

    @property
    def dtype(self) -> torch.dtype:
        """The latents' dtype: the UNet's."""
        return self.components.dtype

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image's latent."""
        vae = self.components.vae.config
        factor = 2 ** (len(vae.block_out_channels) - 1)
        return (vae.latent_channels, self.height // factor, self.width // factor)


def require_unet_channels(info: ModelInfo, allowed: tuple[int, ...], task: str) -> None:
    """Refuse a model whose denoiser's input channels do not fit the task, before its weights load."""
    channels = info.denoiser_channels
    if channels not in allowed:
        kinds = " or ".join(str(c) for c in allowed)
        denoiser = "UNet" if info.family.denoiser == "unet" else info.family.denoiser
        raise UserError(
            f"task '{task}' needs a {denoiser} with {kinds} input channels (model.path {info.path} has {channels})."
        )


def check_strength(cfg) -> None:
    """strength must lie in [0, 1] and leave at least one of the steps to run."""
    if not 0 <= cfg.strength <= 1:
        raise UserError(f"strength must be a number in [0, 1]; got {cfg.strength}.")
    if int(cfg.steps * cfg.strength) < 1:
        raise UserError(
            f"strength x steps must leave at least one step; {cfg.strength} x {cfg.steps} leaves none."
        )


def input_size(cfg, key: str = "image") -> tuple[int, int]:
    """(width, height) of the input named by `key`, read now so a bad file fails before weights load;
    a mask or depth map is read in its grayscale form, as its variant reads it."""
    return read_image(cfg[key], key, mode="RGB" if key == "image" else "L").size


def check_own_size(cfg, info: ModelInfo, size: tuple[int, int], what: str, remedy: str) -> tuple[int, int]:
    """The input's (width, height), checked against the VAE factor on each side that height/width leave to it;
    a mismatch names the input and its file, not `height` (which the user never set)."""
    factor = info.size_factor
    unset = [side for key, side in (("width", size[0]), ("height", size[1])) if cfg[key] is None]
    if any(side < factor or side % factor for side in unset):
        raise UserError(f"{what} is {size[0]}x{size[1]}; to be used at that size its sides must be multiples of "
                        f"{factor} ({info.size_rule}), so {remedy}.")
    return size


def image_size(cfg, info: ModelInfo) -> tuple[int, int]:
    """(width, height) of `image`, which sets the run's size where height/width are unset."""
    return check_own_size(cfg, info, input_size(cfg), f"image file {cfg.image}", "set height and width to resize it")


def set_timesteps(ctx: "RunContext") -> None:
    """The scheduler's timesteps for the run's steps, with what the family adds (FLUX: its sigmas and shift)."""
    options = ctx.components.family.timestep_options(ctx.scheduler, ctx.cfg.steps, ctx.latent_shape)
    ctx.scheduler.set_timesteps(ctx.cfg.steps, device=ctx.device, **options)


def cut_timesteps(ctx: "RunContext") -> torch.Tensor:
    """The run's timesteps, cut by its strength (kept_timesteps)."""
    set_timesteps(ctx)
    return kept_timesteps(ctx.scheduler, ctx.cfg.steps, ctx.cfg.strength, ctx.components.family.schedulers)


def kept_timesteps(scheduler, steps: int, strength: float, kind: str = NOISE) -> torch.Tensor:
    """The last strength x steps of the set timesteps, as diffusers' get_timesteps keeps them (and sets the begin
    index): SD's pipelines round the kept count down, SD3's and FLUX's (flow kind) round the skipped count down."""
    skipped = int(max(steps - steps * strength, 0)) if kind == FLOW else steps - min(int(steps * strength), steps)
    start = skipped * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]
