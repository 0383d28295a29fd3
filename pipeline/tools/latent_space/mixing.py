"""Interpolation between two tensors: linear, and spherical (slerp, Shoemake 1985) for Gaussian noise."""

from __future__ import annotations

import torch

PARALLEL = 1e-6  # below this angle (radians) slerp falls back to linear interpolation


def weights(frames: int) -> list[float]:
    """`frames` evenly spaced weights from 0 to 1, both ends included."""
    return [i / (frames - 1) for i in range(frames)]


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) a + t b: exactly a at t = 0 and b at t = 1."""
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Along the great circle from a to b (each taken as one flat vector); keeps the norm of Gaussian noise."""
    a64, b64 = a.double(), b.double()
    cos = (a64 * b64).sum() / (a64.norm() * b64.norm())
    angle = torch.arccos(cos.clamp(-1, 1))
    if angle < PARALLEL:
        return lerp(a, b, t)
    weight_a, weight_b = torch.sin((1 - t) * angle) / torch.sin(angle), torch.sin(t * angle) / torch.sin(angle)
    return (weight_a * a64 + weight_b * b64).to(a.dtype)


def interpolate(a: torch.Tensor, b: torch.Tensor, frames: int, method: str) -> list[torch.Tensor]:
    """`frames` tensors from a to b, in order, by 'linear' or 'slerp'."""
    mix = slerp if method == "slerp" else lerp
    return [mix(a, b, t) for t in weights(frames)]
