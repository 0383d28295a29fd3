"""A minimal text-to-image sampler for watching adherence during training (DDIM + guidance)."""

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.shapes.models import SCHEDULER_CONFIG


@torch.no_grad()
def sample(
    unet: UNet2DConditionModel, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
    vae: AutoencoderKL, prompts: list[str], seeds: list[int], steps: int = 25,
    guidance: float = 7.5,
) -> list[Image.Image]:
    """Generate one image per prompt, image i from noise seeded by seeds[i] (as diffusers does)."""
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    ids = tokenizer(
        [""] * len(prompts) + prompts, padding="max_length",
        max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt",
    ).input_ids
    embeddings = text_encoder(ids)[0]
    shape = (1, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    latents = torch.cat(
        [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
    ) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        uncond, cond = unet(model_input, t, encoder_hidden_states=embeddings).sample.chunk(2)
        latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
    pixels = vae.decode(latents / vae.config.scaling_factor).sample
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]
