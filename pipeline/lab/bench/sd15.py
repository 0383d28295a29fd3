"""Stable Diffusion 1.5's UNet, text encoder and VAE shapes with random weights: nothing is downloaded.

The configuration values are those published in the stable-diffusion-v1-5 model folder's config files
(unet/config.json, text_encoder/config.json, vae/config.json), written out here by hand.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from pipeline.models.components import Components
from pipeline.models.families.sd import SD1
from pipeline.lab.fixtures.tiny_model import sd_scheduler, write_tokenizer

UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
    scaling_factor=0.18215,
)


def build_sd15(device: torch.device, dtype: torch.dtype, seed: int = 0) -> Components:
    """SD 1.5-shaped components with random weights (a byte-level tokenizer stands in for CLIP's vocabulary)."""
    tokenizer = write_tokenizer(Path(tempfile.mkdtemp(prefix="sd15-tokenizer-")))
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT))
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    for module in (text_encoder, unet, vae):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    named = {"tokenizer": tokenizer, "text_encoder": text_encoder, "unet": unet, "vae": vae}
    return Components(named, SD1, dict(sd_scheduler().config), device, dtype, "sd15-random")
