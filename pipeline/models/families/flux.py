"""FLUX.1 (Black Forest Labs): CLIP ViT-L's pooled output and T5-XXL's states condition a flow-matching transformer
(FluxTransformer2DModel) that reads 2x2 patches of 16-channel latents, with a shift that grows with the image's
size; FLUX-dev is guidance-distilled (the guidance scale is an input, one pass per step), FLUX-schnell is
timestep-distilled (a few steps, no guidance).

The conditioning and schedule follow diffusers' FluxPipeline: CLIP's pooler output of the prompt's 77 tokens as
pooled_projections, T5's states of max_sequence_length tokens (512) as hidden_states; sigmas from 1 to 1/steps and,
where the scheduler shifts by resolution, mu from the packed sequence length. `guidance_scale` is the distilled
guidance; true classifier-free guidance with the negative prompt runs when `true_cfg_scale` > 1.
"""

from __future__ import annotations

import numpy as np
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

from pipeline.engine.conditioning import Conditioning
from pipeline.engine.schedulers import FLOW
from pipeline.models.families.family import Family, Part
from pipeline.models.families.flow_file import FLUX_FILE
from pipeline.models.transformer_call import POOLED, FluxCall
from pipeline.text.pairs import pooled_output
from pipeline.text.t5 import encode_t5

T5_LENGTH = 512  # FluxPipeline's max_sequence_length default (and its limit)
DEFAULT_SAMPLE = 128  # FluxPipeline's default_sample_size: 1024-pixel images
PARTS = (
    Part("tokenizer", CLIPTokenizer, weighted=False),
    Part("tokenizer_2", T5TokenizerFast, weighted=False),
    Part("text_encoder", CLIPTextModel, config=CLIPTextConfig),
    Part("text_encoder_2", T5EncoderModel, config=T5Config),
    Part("transformer", FluxTransformer2DModel),
    Part("vae", AutoencoderKL),
    Part("scheduler", FlowMatchEulerDiscreteScheduler, weighted=False),
)


def encode_flux(components, cfg, count: int, guided: bool, size: tuple[int, int]) -> Conditioning:
    """The bundle for `count` images: T5's hidden_states and CLIP's pooled_projections for each half."""
    texts = [cfg.prompt, cfg.negative_prompt] if guided else [cfg.prompt]
    keys = ["prompt", "negative_prompt"]
    tokenizer, clip = components.text_pairs[0]
    pooled = [pooled_output(tokenizer, clip, text, cfg.prompt_syntax, components.device) for text in texts]
    t5 = encode_t5(components.parts["tokenizer_2"], components.parts["text_encoder_2"], texts, components.device,
                   cfg.prompt_syntax, cfg.max_sequence_length or T5_LENGTH, keys)
    halves = [{"hidden_states": z, POOLED: p.to(z.dtype)} for z, p in zip(t5, pooled)]
    return Conditioning(halves[0], halves[1] if guided else None).repeat(count)


def shift_for(config, tokens: int) -> float:
    """mu for a packed sequence of `tokens`: linear from base_shift at base_image_seq_len to max_shift at
    max_image_seq_len (FluxPipeline's calculate_shift, with its defaults)."""
    base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    low, high = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    return low + (tokens - base) * (high - low) / (top - base)


def flux_timesteps(scheduler, steps: int, latent_shape: tuple[int, ...]) -> dict:
    """Sigmas from 1 to 1/steps (none for a scheduler with its own flow sigmas, DPM-Solver's and UniPC's) and, where
    the scheduler shifts by resolution (FLUX-dev's config; schnell's shifts by a constant), the resolution's mu."""
    _, height, width = latent_shape
    shifting = scheduler.config.get("use_dynamic_shifting")
    mu = {"mu": shift_for(scheduler.config, (height // 2) * (width // 2))} if shifting else {}
    return mu if scheduler.config.get("use_flow_sigmas") else {"sigmas": np.linspace(1.0, 1 / steps, steps), **mu}


FLUX = Family(
    name="flux", label="FLUX.1", parts=PARTS, text_pairs=(("tokenizer", "text_encoder"),), denoiser="transformer",
    encode=encode_flux, model_call=lambda components, scale: FluxCall(components.unet, scale), schedulers=FLOW,
    matches=lambda configs: configs["transformer"].get("_class_name") == "FluxTransformer2DModel",
    pipelines=("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline"), syntaxes=("a1111", "none"), packing=2,
    default_sample=DEFAULT_SAMPLE, cfg_scale=lambda cfg: cfg.true_cfg_scale, timestep_options=flux_timesteps,
    clip_skip=False, flow_file=FLUX_FILE,
)
