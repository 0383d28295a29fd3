"""Stable Diffusion 3 and 3.5: CLIP ViT-L and OpenCLIP ViT-bigG (both with projection) and an optional T5-XXL, a
flow-matching transformer (SD3Transformer2DModel), a 16-channel AutoencoderKL with a shift and a scale
(Esser et al. 2024, "Scaling Rectified Flow Transformers").

The conditioning follows diffusers' StableDiffusion3Pipeline.encode_prompt: both CLIPs' penultimate hidden states
joined on the feature axis and zero-padded to T5's width, then T5's states after them on the token axis (zeros
where the model has no T5, as diffusers runs it without); the two CLIPs' pooled outputs joined as the transformer's
pooled_projections. A negative prompt is encoded like the prompt, an empty one included.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from pipeline.engine.conditioning import Conditioning
from pipeline.engine.schedulers import FLOW
from pipeline.models.families.family import Family, Part
from pipeline.models.families.flow_file import SD3_FILE
from pipeline.models.transformer_call import POOLED, SD3Call
from pipeline.text.pairs import encode_pairs
from pipeline.text.t5 import encode_t5

T5_LENGTH = 256  # StableDiffusion3Pipeline's max_sequence_length default
PARTS = (
    Part("tokenizer", CLIPTokenizer, weighted=False),
    Part("tokenizer_2", CLIPTokenizer, weighted=False),
    Part("tokenizer_3", T5TokenizerFast, weighted=False, optional="t5"),
    Part("text_encoder", CLIPTextModelWithProjection, config=CLIPTextConfig),
    Part("text_encoder_2", CLIPTextModelWithProjection, config=CLIPTextConfig),
    Part("text_encoder_3", T5EncoderModel, config=T5Config, optional="t5"),
    Part("transformer", SD3Transformer2DModel),
    Part("vae", AutoencoderKL),
    Part("scheduler", FlowMatchEulerDiscreteScheduler, weighted=False),
)


def t5_states(components, texts: list[str], cfg, length: int) -> list[torch.Tensor]:
    """T5's states of each text, or zeros (1, length, joint_attention_dim) where the model has no T5."""
    encoder = components.parts.get("text_encoder_3")
    if encoder is None:
        width = components.unet.config.joint_attention_dim
        return [torch.zeros(1, length, width, device=components.device, dtype=components.dtype) for _ in texts]
    return encode_t5(components.parts["tokenizer_3"], encoder, texts, components.device, cfg.prompt_syntax, length,
                     ["prompt", "negative_prompt"])


def encode_sd3(components, cfg, count: int, guided: bool, size: tuple[int, int]) -> Conditioning:
    """The bundle for `count` images: hidden_states (CLIP then T5 tokens) and pooled_projections for each half."""
    texts = [cfg.prompt, cfg.negative_prompt] if guided else [cfg.prompt]
    clip, pooled = encode_pairs(components.text_pairs, texts, components.device, cfg.prompt_syntax, cfg.clip_skip,
                                ["prompt", "negative_prompt"], pool_each=True)
    t5 = t5_states(components, texts, cfg, cfg.max_sequence_length or T5_LENGTH)
    halves = []
    for c, p, z in zip(clip, pooled, t5):
        c = torch.nn.functional.pad(c, (0, z.shape[-1] - c.shape[-1]))
        halves.append({"hidden_states": torch.cat([c, z.to(c.dtype)], dim=-2), POOLED: p})
    return Conditioning(halves[0], halves[1] if guided else None).repeat(count)


def sd3_call(components, guidance_scale: float) -> SD3Call:
    """The transformer as the loop calls it."""
    return SD3Call(components.unet)


SD3 = Family(
    name="sd3", label="Stable Diffusion 3", parts=PARTS,
    text_pairs=(("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")), denoiser="transformer",
    encode=encode_sd3, model_call=sd3_call, schedulers=FLOW,
    matches=lambda configs: configs["transformer"].get("_class_name") == "SD3Transformer2DModel",
    pipelines=("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"),
    flow_file=SD3_FILE,
)
