"""Skip-layer guidance (SD3.5; diffusers' StableDiffusion3Pipeline skip_guidance_layers): on the guided steps
strictly between `start` and `stop` of the steps, a further pass of the conditional half with some transformer
layers skipped, and scale x (conditional - skipped) added to the guided prediction.

As a wrapper of the model call it returns the conditional half moved by scale / guidance_scale x (conditional -
skipped): the loop's guidance, uncond + g x (cond - uncond), turns that into exactly the added term."""

from __future__ import annotations

import torch

from pipeline.common.errors import UserError
from pipeline.engine.conditioning import Tensors
from pipeline.engine.model_call import ModelCall

TAKES_SKIP_LAYERS = ("SD3Transformer2DModel",)  # denoisers whose forward takes skip_layers


def check_skip_layers(cfg, denoiser: dict) -> None:
    """Layers the transformer has, a scale from 0 and 0 <= start < stop <= 1, on a denoiser that can skip layers."""
    slg = cfg.skip_layer_guidance
    if not slg.layers:
        return
    cls = denoiser.get("_class_name", "UNet2DConditionModel")
    if cls not in TAKES_SKIP_LAYERS:
        raise UserError(f"skip_layer_guidance.layers applies to SD3's transformer; this model's denoiser is a {cls}.")
    depth = int(denoiser.get("num_layers", 0))
    if any(not 0 <= layer < depth for layer in slg.layers):
        raise UserError(f"skip_layer_guidance.layers must be block numbers from 0 to {depth - 1} (the transformer's "
                        f"num_layers is {depth}); got {list(slg.layers)}.")
    if not 0 <= slg.scale < float("inf"):
        raise UserError(f"skip_layer_guidance.scale must be a number >= 0; got {slg.scale}.")
    if not 0 <= slg.start < slg.stop <= 1:
        raise UserError(f"skip_layer_guidance.start and stop must be shares with 0 <= start < stop <= 1; got "
                        f"{slg.start} and {slg.stop}.")


def with_skip_layers(model: ModelCall, transformer, cfg, images: int) -> ModelCall:
    """The call with skip-layer guidance on the guided steps in its window, for a batch of `images` (a guided step's
    batch holds both halves); steps are counted per call, one call per step."""
    slg = cfg.skip_layer_guidance
    if not slg.layers or cfg.guidance_scale <= 1:
        return model
    calls = [0]

    def call(x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        i, calls[0] = calls[0], calls[0] + 1
        prediction = model(x, t, conditioning)
        if not (len(x) == 2 * images and cfg.steps * slg.start < i < cfg.steps * slg.stop):
            return prediction
        uncond, cond = prediction.chunk(2)
        skipped = transformer(hidden_states=x[images:], timestep=t.expand(images),
                              encoder_hidden_states=conditioning["hidden_states"][images:],
                              pooled_projections=conditioning["pooled_projections"][images:],
                              skip_layers=list(slg.layers), return_dict=False)[0]
        return torch.cat([uncond, cond + (cond - skipped) * (slg.scale / cfg.guidance_scale)])

    return call
