"""The model call for SD3's transformer (SD3Transformer2DModel): the bundle's hidden states and pooled text become
its encoder_hidden_states and pooled_projections, the timestep one per latent, as StableDiffusion3Pipeline calls it."""

from __future__ import annotations

import torch

from pipeline.engine.conditioning import Tensors

POOLED = "pooled_projections"


class SD3Call:
    """`model(x, t, conditioning)` for an SD3 transformer."""

    def __init__(self, transformer):
        self.transformer = transformer

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The transformer's velocity prediction for x at t."""
        unknown = set(conditioning) - {"hidden_states", POOLED}
        if unknown:
            raise ValueError(f"an SD3 transformer takes no conditioning named {', '.join(sorted(unknown))}")
        return self.transformer(hidden_states=x, timestep=t.expand(len(x)),
                                encoder_hidden_states=conditioning["hidden_states"],
                                pooled_projections=conditioning[POOLED], return_dict=False)[0]


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) latents as FLUX reads them: (B, H/2 x W/2, 4C), each token a 2x2 patch (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """pack's inverse, to (B, C, height, width) latents."""
    b, _, channels = tokens.shape
    grid = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(b, channels // 4, height, width)


def patch_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Each 2x2 patch's position (0, row, column), the rotary embedding's image ids (_prepare_latent_image_ids)."""
    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] += torch.arange(height // 2)[:, None]
    ids[..., 2] += torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxCall:
    """`model(x, t, conditioning)` for a FLUX transformer, as FluxPipeline calls it: the latents packed in 2x2
    patches with their position ids, the text ids zeros, the timestep / 1000, and for a guidance-distilled model
    (FLUX-dev's guidance_embeds) the guidance scale as an input; the prediction unpacked. Packing is a reshape and
    the flow schedulers' steps act element by element, so the loop and the tasks keep the latents unpacked."""

    def __init__(self, transformer, guidance_scale: float):
        self.transformer, self.guidance_scale = transformer, guidance_scale

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The transformer's velocity prediction for x at t."""
        unknown = set(conditioning) - {"hidden_states", POOLED}
        if unknown:
            raise ValueError(f"a FLUX transformer takes no conditioning named {', '.join(sorted(unknown))}")
        b, _, h, w = x.shape
        text = conditioning["hidden_states"]
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full([b], self.guidance_scale, device=x.device, dtype=torch.float32)
        tokens = self.transformer(
            hidden_states=pack(x), timestep=t.expand(b).to(x.dtype) / 1000, guidance=guidance,
            pooled_projections=conditioning[POOLED], encoder_hidden_states=text,
            txt_ids=torch.zeros(text.shape[1], 3, device=x.device, dtype=text.dtype),
            img_ids=patch_ids(h, w, x.device, x.dtype), return_dict=False)[0]
        return unpack(tokens, h, w)
