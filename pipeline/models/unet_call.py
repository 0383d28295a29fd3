"""The model call for a UNet2DConditionModel: the conditioning bundle's names become the UNet's arguments."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.engine.conditioning import Tensors
from pipeline.engine.guidance import scale_embedding

ADDED = ("text_embeds", "time_ids")  # UNet2DConditionModel's added_cond_kwargs for SDXL
IMAGE_EMBEDS = "image_embeds"  # IP-Adapters' image embeddings: image_embeds.0, image_embeds.1, ... one per adapter
RESIDUALS = ("down_block_additional_residuals", "mid_block_additional_residual",
             "down_intrablock_additional_residuals")  # ControlNets' and T2I-Adapters' additions, passed as they are


class UNetCall:
    """`model(x, t, conditioning)` for a UNet: hidden_states as encoder_hidden_states, the added names as
    added_cond_kwargs, and for a guidance-distilled UNet (LCM) the guidance scale's embedding as timestep_cond,
    built as diffusers' pipelines build it (one row per latent; such UNets run without classifier-free guidance)."""

    def __init__(self, unet, guidance_scale: float):
        self.unet, self.guidance_scale = unet, guidance_scale
        self._timestep_cond: dict[tuple, torch.Tensor] = {}

    def timestep_cond(self, x: torch.Tensor) -> torch.Tensor | None:
        """The guidance-scale embedding for this batch, or None for a UNet that takes none."""
        dim = self.unet.config.get("time_cond_proj_dim")
        if dim is None:
            return None
        key = (len(x), x.device, x.dtype)
        if key not in self._timestep_cond:
            embedding = scale_embedding(self.guidance_scale, dim, len(x), torch.float32)
            self._timestep_cond[key] = embedding.to(x.device, x.dtype)
        return self._timestep_cond[key]

    def arguments(self, x: torch.Tensor, conditioning: Tensors) -> dict[str, Any]:
        """The UNet's keyword arguments for one call; a name the UNet cannot take is a programming error."""
        images = sorted((name for name in conditioning if name.startswith(IMAGE_EMBEDS + ".")),
                        key=lambda name: int(name.rsplit(".", 1)[1]))
        unknown = set(conditioning) - {"hidden_states", *ADDED, *RESIDUALS, *images}
        if unknown:
            raise ValueError(f"a UNet takes no conditioning named {', '.join(sorted(unknown))}")
        added: dict[str, Any] = {name: conditioning[name] for name in ADDED if name in conditioning}
        if images:
            added[IMAGE_EMBEDS] = [conditioning[name] for name in images]
        residuals = {name: conditioning[name] for name in RESIDUALS if name in conditioning}
        return {"encoder_hidden_states": conditioning["hidden_states"], "timestep_cond": self.timestep_cond(x),
                "added_cond_kwargs": added, **residuals}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The UNet's prediction for x at t."""
        return self.unet(x, t, **self.arguments(x, conditioning), return_dict=False)[0]
