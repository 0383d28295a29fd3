"""Two experts on one schedule: the base denoises the first share of the steps, a refiner the rest, from the base's
latents without new noise (Podell et al. 2023, SDXL's "ensemble of expert denoisers"; diffusers' denoising_end and
denoising_start, A1111's "Refiner switch at")."""

from __future__ import annotations

import torch


def cutoff(scheduler, switch_at: float) -> int:
    """The training timestep where the experts switch: the first keeps timesteps at or above it."""
    trained = scheduler.config.num_train_timesteps
    return int(round(trained - switch_at * trained))


def first_expert(scheduler, timesteps: torch.Tensor, switch_at: float) -> torch.Tensor:
    """The base's timesteps: those at or above the cutoff (diffusers' denoising_end)."""
    return timesteps[: int((timesteps >= cutoff(scheduler, switch_at)).sum())]


def second_expert(scheduler, steps: int, switch_at: float, device: torch.device) -> torch.Tensor:
    """The refiner's timesteps of the same `steps`-step schedule: those below the cutoff, one more for a second-order
    scheduler whose count is even (so it ends on a full step), with the scheduler's begin index set (diffusers'
    StableDiffusionXLImg2ImgPipeline.get_timesteps with denoising_start)."""
    scheduler.set_timesteps(steps, device=device)
    count = int((scheduler.timesteps < cutoff(scheduler, switch_at)).sum())
    if scheduler.order == 2 and count % 2 == 0:
        count += 1
    start = len(scheduler.timesteps) - count
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]
