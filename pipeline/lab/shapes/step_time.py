"""Seconds per training step of a recipe's UNet and text encoder (forward, backward, AdamW) at its batch size, on
random inputs: how the recipe's precision and this CPU kind set the UNet stage's time."""

from __future__ import annotations

import time

import torch

from pipeline.lab.shapes.models import build_text_encoder, build_unet
from pipeline.lab.shapes.train_config import TrainConfig


def training_step_seconds(config: TrainConfig, bf16: bool, steps: int = 6, warmup: int = 2) -> float:
    """Mean wall time of `steps` training steps after `warmup` untimed ones, on the recipe's threads."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    unet = build_unet(config.unet, config.vae, config.text)
    text = build_text_encoder(config.text, 64)
    optimiser = torch.optim.AdamW(list(unet.parameters()) + list(text.parameters()), lr=1e-4)
    batch, side = config.unet.batch_size, 64 // 2 ** (len(config.vae.block_out_channels) - 1)
    latents = torch.randn(batch, config.vae.latent_channels, side, side)
    ids, timesteps = torch.randint(0, 64, (batch, 77)), torch.randint(0, 1000, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = unet(latents, timesteps, text(ids)[0]).sample
        loss = (out.float() - latents).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps
