"""The one model call: the loop calls `model(x, t, conditioning) -> prediction`, whatever the model is.

`x` is the scheduler-scaled latent batch, `t` the timestep, `conditioning` the names and tensors of one step's batch
(engine/conditioning.py). A family adapts its denoiser to this call (models/unet_call.py for a UNet); speed-ups
(speed/) and controls wrap the call, each in its own file, in the spirit of k-diffusion's wrappers of raw models
(k_diffusion/external.py). The task's extra input channels wrap the denoiser and its speed-ups, so a control that
wraps the call after them sees the latents before the channels are added.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch

from pipeline.engine.conditioning import Tensors

TaskInput = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ModelCall(Protocol):
    """A denoiser as the loop sees it."""

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor: ...


def with_task_input(model: ModelCall, task_input: Optional[TaskInput]) -> ModelCall:
    """The call with the task's extra channels (inpaint's mask and masked image, depth2img's depth) appended to x."""
    if task_input is None:
        return model

    def call(x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        return model(task_input(x, t), t, conditioning)

    return call
