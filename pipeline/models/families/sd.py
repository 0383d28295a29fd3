"""Stable Diffusion 1.x and 2.x: one CLIP tokenizer and text encoder, a UNet2DConditionModel, an AutoencoderKL.

They differ in the text encoder (OpenAI's CLIP ViT-L with quick_gelu for 1.x, OpenCLIP ViT-H with gelu for 2.x) and
in how a one-file checkpoint stores it; the conditioning (the last hidden state, or an earlier one with clip skip)
and the model call are the same.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from pipeline.engine.conditioning import Conditioning
from pipeline.models.families.family import Family, Part, SingleFile
from pipeline.models.unet_call import UNetCall
from pipeline.text.encoding import encode_prompt

PARTS = (
    Part("tokenizer", CLIPTokenizer, weighted=False),
    Part("text_encoder", CLIPTextModel, config=CLIPTextConfig),
    Part("unet", UNet2DConditionModel),
    Part("vae", AutoencoderKL),
    Part("scheduler", PNDMScheduler, weighted=False),
)
CLIP, OPEN_CLIP = "cond_stage_model.transformer.", "cond_stage_model.model."  # text keys in one-file checkpoints
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
                "StableDiffusionDepth2ImgPipeline")
SD2_BASE_STEP = 875000  # the 2.x base (512, epsilon) release's global_step: diffusers' from_single_file reads it so


def encode_clip(components, cfg, count: int, guided: bool, size: tuple[int, int]) -> Conditioning:
    """The prompt's (and, when guided, the negative prompt's) hidden states, read with the config's syntax (the
    image size does not condition these models)."""
    return encode_prompt(components.tokenizer, components.text_encoder, cfg.prompt, cfg.negative_prompt, count, guided,
                         components.device, cfg.prompt_syntax, cfg.clip_skip)


def unet_call(components, guidance_scale: float) -> UNetCall:
    """The UNet as the loop calls it."""
    return UNetCall(components.unet, guidance_scale)


def openai_clip(configs: dict[str, dict]) -> bool:
    """SD 1.x's text encoder: CLIP's quick_gelu activation."""
    return configs["text_encoder"].get("hidden_act", "quick_gelu") != "gelu"


def one_clip(configs: dict[str, dict]) -> bool:
    """One text encoder (no second one, as SDXL's) and a UNet conditioned on it alone."""
    return "text_encoder_2" not in configs and configs["unet"].get("addition_embed_type") != "text_time"


def open_clip_sd2(header) -> str:
    """SD 2.x's two releases share keys and shapes; the base one is told by its training step."""
    return "sd2-base" if header.global_step == SD2_BASE_STEP else "sd2"


def convert_open_clip(meta: dict, text_config: CLIPTextConfig) -> dict:
    """OpenCLIP text tensors under diffusers' names, converted on the meta device."""
    with torch.device("meta"):
        return convert_open_clip_checkpoint(CLIPTextModel(text_config), meta)


SD1 = Family(
    name="sd1", label="Stable Diffusion 1.x", parts=PARTS, text_pairs=(("tokenizer", "text_encoder"),),
    denoiser="unet", encode=encode_clip, model_call=unet_call,
    matches=lambda configs: one_clip(configs) and openai_clip(configs), pipelines=SD_PIPELINES,
    single_file=SingleFile(CLIP, lambda header: "sd1", lambda meta, text_config: convert_ldm_clip_checkpoint(meta)),
)
SD2 = Family(
    name="sd2", label="Stable Diffusion 2.x", parts=PARTS, text_pairs=(("tokenizer", "text_encoder"),),
    denoiser="unet", encode=encode_clip, model_call=unet_call, pipelines=SD_PIPELINES,
    matches=lambda configs: one_clip(configs) and not openai_clip(configs),
    single_file=SingleFile(OPEN_CLIP, open_clip_sd2, convert_open_clip),
)
