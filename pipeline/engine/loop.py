"""THE denoising loop: one batched model call per step for both CFG halves, the scheduler's step, hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from pipeline.engine.conditioning import Conditioning
from pipeline.engine.guidance import guide
from pipeline.engine.model_call import ModelCall
from pipeline.engine.nonfinite import NonFiniteError, is_finite, step_failure
from pipeline.engine.schedulers import scale_input, step_kwargs

ModelInputHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
AfterStepHook = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
FinishHook = Callable[[torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class LoopSetup:
    """What a variant hands the loop: starting latents, the timesteps to visit, and optional hooks.

    model_input(scaled_latents, t) returns the denoiser's input (e.g. with mask channels concatenated): the run wraps
    the model call with it (engine/model_call.with_task_input), inside any control;
    after_step(latents, i, t) returns the latents after step i (e.g. with the known region blended back);
    finish(images) is applied by generate to the decoded images in [0, 1] (e.g. pasting kept pixels back).
    """

    latents: torch.Tensor
    timesteps: torch.Tensor
    model_input: Optional[ModelInputHook] = None
    after_step: Optional[AfterStepHook] = None
    finish: Optional[FinishHook] = None


@torch.no_grad()
def denoise(
    model: ModelCall,
    scheduler,
    setup: LoopSetup,
    conditioning: Conditioning,
    guidance_scale: float,
    guidance_rescale: float,
    generators: list[torch.Generator],
    callback: Optional[StepCallback] = None,
    progress: bool = True,
    guidance_cutoff: float = 1.0,
) -> torch.Tensor:
    """Run the scheduler from setup.latents over setup.timesteps and return the final latents.

    `model` is the whole model call, the task's input channels included. With guidance_cutoff < 1, steps from
    int(len(timesteps) * cutoff) on skip the unconditional pass. Latents that stop being finite raise
    NonFiniteError naming the step and the likely cause.
    """
    latents = setup.latents
    guided_steps = int(len(setup.timesteps) * guidance_cutoff) if conditioning.guided else 0
    both = conditioning.batch(guided=True) if guided_steps else None
    extra = step_kwargs(scheduler, generators)
    for i, t in enumerate(tqdm(setup.timesteps, desc="denoise", disable=not progress)):
        guided = i < guided_steps
        context = both if guided else conditioning.cond
        model_in = scale_input(scheduler, torch.cat([latents] * 2) if guided else latents, t)
        prediction = model(model_in, t, context)
        noise = guide(*prediction.chunk(2), guidance_scale, guidance_rescale) if guided else prediction
        latents = scheduler.step(noise, t, latents, **extra, return_dict=False)[0]
        if setup.after_step is not None:
            latents = setup.after_step(latents, i, t)
        if not is_finite(latents):  # one small reduction per step; the cause is looked for only on failure
            full_in = setup.model_input(model_in, t) if setup.model_input is not None else model_in
            raise NonFiniteError(step_failure(i, len(setup.timesteps), scheduler, setup.latents, full_in, context,
                                              prediction, noise, latents, guidance_scale))
        if callback is not None:
            callback(i, t, latents)
    return latents
