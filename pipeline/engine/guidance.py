"""Classifier-free guidance as pure functions (Ho & Salimans 2022; rescale: Lin et al. 2023, sec. 3.4)."""

from __future__ import annotations

import torch

# The largest guidance_scale a config may ask for: UIs cap CFG at 30 (AUTOMATIC1111) or 100 (ComfyUI); far beyond,
# uncond + scale * (cond - uncond) overflows half precision and a scale of 1e30 overflows even float32.
MAX_GUIDANCE_SCALE = 100.0


def is_guided(guidance_scale: float, unet_config) -> bool:
    """CFG runs when the scale exceeds 1 and the UNet is not guidance-distilled (diffusers' rule)."""
    return guidance_scale > 1 and unet_config.get("time_cond_proj_dim") is None


def guide(uncond: torch.Tensor, cond: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """uncond + scale * (cond - uncond), then optionally pulled back toward cond's standard deviation."""
    guided = uncond + scale * (cond - uncond)
    if rescale > 0:
        guided = rescale_to(guided, cond, rescale)
    return guided


def rescale_to(guided: torch.Tensor, cond: torch.Tensor, factor: float) -> torch.Tensor:
    """Mix the guided prediction with a copy rescaled to cond's per-sample std; fixes over-exposure."""
    dims = list(range(1, cond.ndim))
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return factor * rescaled + (1 - factor) * guided


def scale_embedding(scale: float, dim: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """The sinusoidal embedding of (scale - 1) fed to guidance-distilled UNets (LCM), as diffusers builds it."""
    w = torch.full((count,), scale - 1.0) * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=dtype) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    emb = w.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
