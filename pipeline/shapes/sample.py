"""Sampling during training, through the project's own pipeline (generate_images: one loop for everything)."""

from itertools import groupby

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from omegaconf import OmegaConf
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline import config
from pipeline.components import Components
from pipeline.generate import generate_images
from pipeline.shapes.models import SCHEDULER_CONFIG
from pipeline.shapes.world import IMAGE_SIZE


@torch.no_grad()
def sample(
    unet: UNet2DConditionModel, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
    vae: AutoencoderKL, prompts: list[str], seeds: list[int], steps: int = 25,
    guidance: float = 7.5,
) -> list[Image.Image]:
    """One image per (prompt, seed) with DDIM and classifier-free guidance, as scripts/generate.py makes it."""
    parts = Components(tokenizer, text_encoder, unet, vae, SCHEDULER_CONFIG, unet.device, unet.dtype)
    base = config.load(None, ["scheduler.name=ddim", f"steps={steps}", f"guidance_scale={guidance}"])
    images: list[Image.Image] = []
    for prompt, group in groupby(zip(prompts, seeds), key=lambda pair: pair[0]):
        cfg = OmegaConf.merge(base, {"prompt": prompt})
        images += generate_images(parts, cfg, [seed for _, seed in group], IMAGE_SIZE, IMAGE_SIZE, progress=False)
    return images
