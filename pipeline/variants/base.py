"""What every variant receives: the run's config, loaded parts, fresh scheduler, generators and size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..components import Components, ModelInfo
from ..errors import UserError


@dataclass
class RunContext:
    """One batch of one run, as a variant's prepare() sees it."""

    cfg: Any
    components: Components
    scheduler: Any
    generators: list[torch.Generator]
    height: int
    width: int

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
    """Refuse a model whose UNet input channels do not fit the task, before its weights load."""
    channels = info.unet.get("in_channels")
    if channels not in allowed:
        kinds = " or ".join(str(c) for c in allowed)
        raise UserError(
            f"task '{task}' needs a UNet with {kinds} input channels, but model.path {info.path} has {channels}."
        )
