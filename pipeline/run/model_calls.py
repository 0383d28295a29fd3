"""The denoiser as the loop calls it: the family's model call wrapped by the speed options and the task's input."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from pipeline.controls import in_use
from pipeline.engine.loop import LoopSetup
from pipeline.engine.model_call import ModelCall, with_task_input
from pipeline.models.components import Components
from pipeline.models.skip_layers import with_skip_layers
from pipeline.speed.deepcache import with_deepcache
from pipeline.speed.token_merging import with_token_merging


def model_call(components: Components, cfg: DictConfig, setup: LoopSetup, ctx: Any = None) -> ModelCall:
    """Wrappers inside out: the family's model call, skip-layer guidance (SD3.5), DeepCache (a fresh cache per batch), token merging's seeded
    partition, the task's extra input channels, then each control (which so sees the latents without them) for
    the batch `ctx` (variants/base.RunContext) describes."""
    perf = cfg.performance
    call = with_skip_layers(components.family.model_call(components, cfg.guidance_scale), components.unet, cfg,
                            len(setup.latents))
    call = with_deepcache(call, perf.deepcache_interval, perf.deepcache_branch)
    call = with_task_input(with_token_merging(call, components.unet), setup.model_input)
    for control, loaded in in_use(cfg, components.controls):
        wrap = getattr(control, "wrap", None)
        call = wrap(call, loaded, ctx, setup) if wrap else call
    return call
