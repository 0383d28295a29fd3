"""THE denoising loop: one batched UNet call per step for both CFG halves, the scheduler's step, hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from .guidance import guide, scale_embedding
from .nonfinite import NonFiniteError, is_finite, step_failure
from .schedulers import step_kwargs
from .text import TextEmbeddings

ModelInputHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
AfterStepHook = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
FinishHook = Callable[[torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class LoopSetup:
    """What a variant hands the loop: starting latents, the timesteps to visit, and optional hooks.

    model_input(scaled_latents, t) returns the UNet input (e.g. with mask channels concatenated);
    after_step(latents, i, t) returns the latents after step i (e.g. with the known region blended back);
    finish(images) is applied by generate to the decoded images in [0, 1] (e.g. pasting kept pixels back).
    """

    latents: torch.Tensor
    timesteps: torch.Tensor
    model_input: Optional[ModelInputHook] = None
    after_step: Optional[AfterStepHook] = None
    finish: Optional[FinishHook] = None


def _timestep_cond(unet, guidance_scale: float, count: int, latents: torch.Tensor) -> torch.Tensor | None:
    """The guidance-scale embedding for guidance-distilled UNets, None for ordinary ones."""
    dim = unet.config.get("time_cond_proj_dim")
    if dim is None:
        return None
    return scale_embedding(guidance_scale, dim, count, torch.float32).to(latents.device, latents.dtype)


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    setup: LoopSetup,
    text: TextEmbeddings,
    guidance_scale: float,
    guidance_rescale: float,
    generators: list[torch.Generator],
    callback: Optional[StepCallback] = None,
    progress: bool = True,
    guidance_cutoff: float = 1.0,
) -> torch.Tensor:
    """Run the scheduler from setup.latents over setup.timesteps and return the final latents.

    With guidance_cutoff < 1, steps from int(len(timesteps) * cutoff) on skip the unconditional pass.
    Latents that stop being finite raise NonFiniteError naming the step and the likely cause.
    """
    latents = setup.latents
    guided_steps = int(len(setup.timesteps) * guidance_cutoff) if text.uncond is not None else 0
    both = torch.cat([text.uncond, text.cond]) if guided_steps else text.cond
    timestep_cond = _timestep_cond(unet, guidance_scale, len(latents), latents)
    extra = step_kwargs(scheduler, generators)
    for i, t in enumerate(tqdm(setup.timesteps, desc="denoise", disable=not progress)):
        guided = i < guided_steps
        context = both if guided else text.cond
        model_in = torch.cat([latents] * 2) if guided else latents
        model_in = scheduler.scale_model_input(model_in, t)
        if setup.model_input is not None:
            model_in = setup.model_input(model_in, t)
        prediction = unet(model_in, t, encoder_hidden_states=context, timestep_cond=timestep_cond, return_dict=False)[0]
        noise = guide(*prediction.chunk(2), guidance_scale, guidance_rescale) if guided else prediction
        latents = scheduler.step(noise, t, latents, **extra, return_dict=False)[0]
        if setup.after_step is not None:
            latents = setup.after_step(latents, i, t)
        if not is_finite(latents):  # one small reduction per step; the cause is looked for only on failure
            raise NonFiniteError(step_failure(i, len(setup.timesteps), scheduler, setup.latents, model_in, context,
                                              prediction, noise, latents, guidance_scale))
        if callback is not None:
            callback(i, t, latents)
    return latents
