"""Stable Diffusion XL, base and refiner: two CLIP text encoders (the refiner keeps only the second), a UNet that also
takes the pooled text embedding and the size and crop conditioning ("time ids", Podell et al. 2023, section 2.2),
an AutoencoderKL (scaling factor 0.13025, force_upcast).

The conditioning follows diffusers' StableDiffusionXLPipeline: hidden states joined on the feature axis, the pooled
output of the second encoder as `text_embeds`, `time_ids` from the config's size keys, an empty negative prompt as
zeros where model_index.json's force_zeros_for_empty_prompt says so, and the refiner's aesthetic score in place of
the target size where its requires_aesthetics_score says so.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from pipeline.engine.conditioning import Conditioning
from pipeline.models.families.family import Family, Part
from pipeline.models.families.sd import unet_call
from pipeline.models.families.sdxl_file import REFINER_FILE, SDXL_FILE
from pipeline.text.pairs import encode_pairs

BASE_PARTS = (
    Part("tokenizer", CLIPTokenizer, weighted=False),
    Part("tokenizer_2", CLIPTokenizer, weighted=False),
    Part("text_encoder", CLIPTextModel, config=CLIPTextConfig),
    Part("text_encoder_2", CLIPTextModelWithProjection, config=CLIPTextConfig),
    Part("unet", UNet2DConditionModel),
    Part("vae", AutoencoderKL),
    Part("scheduler", EulerDiscreteScheduler, weighted=False),
)
REFINER_PARTS = tuple(part for part in BASE_PARTS if part.name not in ("tokenizer", "text_encoder"))
SDXL_PIPELINES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")


def text_time(configs: dict[str, dict]) -> bool:
    """A UNet conditioned on the pooled text and the time ids (SDXL's addition_embed_type)."""
    return configs["unet"].get("addition_embed_type") == "text_time"


def size_ids(cfg, size: tuple[int, int], aesthetic: bool) -> tuple[list[float], list[float]]:
    """(positive, negative) time ids as diffusers' SDXL pipelines make them: original size + crop top-left + target
    size, or + aesthetic score for a refiner; unset sizes are the run's (height, width). The negative ids are the
    positive ones until a negative key is set (a refiner's always have their own score); then an unset negative
    size is its positive one and an unset negative crop [0, 0]."""
    original, crops, target = list(cfg.original_size or size), list(cfg.crops_coords_top_left), list(cfg.target_size or size)
    negative_original = list(cfg.negative_original_size or original)
    negative_crops = list(cfg.negative_crops_coords_top_left or [0, 0])
    if aesthetic:
        return original + crops + [cfg.aesthetic_score], negative_original + negative_crops + [cfg.negative_aesthetic_score]
    positive = original + crops + target
    negatives = (cfg.negative_original_size, cfg.negative_crops_coords_top_left, cfg.negative_target_size)
    if all(key is None for key in negatives):
        return positive, positive
    return positive, negative_original + negative_crops + list(cfg.negative_target_size or target)


def encode_sdxl(components, cfg, count: int, guided: bool, size: tuple[int, int]) -> Conditioning:
    """The bundle for `count` images: hidden_states, text_embeds (pooled) and time_ids for each half."""
    settings = components.settings
    zeros = guided and cfg.negative_prompt == "" and settings.get("force_zeros_for_empty_prompt", False)
    texts = [cfg.prompt] if zeros or not guided else [cfg.prompt, cfg.negative_prompt]
    hidden, pooled = encode_pairs(components.text_pairs, texts, components.device, cfg.prompt_syntax, cfg.clip_skip,
                                  ["prompt", "negative_prompt"])
    if zeros:
        hidden, pooled = [hidden[0], torch.zeros_like(hidden[0])], [pooled[0], torch.zeros_like(pooled[0])]
    ids = size_ids(cfg, size, settings.get("requires_aesthetics_score", False))
    halves = [{"hidden_states": h, "text_embeds": p, "time_ids": torch.tensor([i], dtype=h.dtype, device=h.device)}
              for h, p, i in zip(hidden, pooled, ids)]
    return Conditioning(halves[0], halves[1] if guided else None).repeat(count)


SDXL = Family(
    name="sdxl", label="Stable Diffusion XL", parts=BASE_PARTS,
    text_pairs=(("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")), denoiser="unet",
    encode=encode_sdxl, model_call=unet_call, matches=lambda configs: text_time(configs) and "text_encoder" in configs,
    pipelines=SDXL_PIPELINES, single_file=SDXL_FILE,
)
SDXL_REFINER = Family(
    name="sdxl-refiner", label="Stable Diffusion XL refiner", parts=REFINER_PARTS,
    text_pairs=(("tokenizer_2", "text_encoder_2"),), denoiser="unet", encode=encode_sdxl, model_call=unet_call,
    matches=lambda configs: text_time(configs) and "text_encoder" not in configs, pipelines=SDXL_PIPELINES,
    single_file=REFINER_FILE,
)
