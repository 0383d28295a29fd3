"""One timed generation, ours or diffusers', on the same components, seeds and scheduler."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from pipeline.models.components import Components
from pipeline.run.generate import generate_images
from pipeline.engine.latents import generators_for
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.bench.measure import peak_memory, sync, timed_calls


@dataclass
class Measurement:
    """Wall seconds of one generation (text in, PIL images out), its peak memory and, optionally, time shares."""

    seconds: float
    peak_mb: float
    images: list[Image.Image]
    sections: dict[str, float] = field(default_factory=dict)


def reference_pipeline(components: Components) -> StableDiffusionPipeline:
    """diffusers' StableDiffusionPipeline assembled from the very same module objects."""
    pipe = StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=make_scheduler("pndm", components.scheduler_config, {}, [0]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_ours(components: Components, cfg, seeds: list[int], sections: bool = False) -> Measurement:
    """Our generate_images; with sections=True also the time inside UNet, text encoder and VAE decode calls."""
    targets = {
        "unet": (components.unet, "forward"),
        "text_encoder": (components.text_encoder, "forward"),
        "vae_decode": (components.vae, "decode"),
    }
    sync(components.device)
    with peak_memory(components.device) as memory:
        start = time.perf_counter()
        if sections:
            with timed_calls(components.device, targets) as shares:
                images = generate_images(components, cfg, seeds, cfg.height, cfg.width, progress=False)
        else:
            shares, images = {}, generate_images(components, cfg, seeds, cfg.height, cfg.width, progress=False)
        sync(components.device)
        seconds = time.perf_counter() - start
    return Measurement(seconds, memory["peak_mb"], images, dict(shares))


def run_diffusers(pipe: StableDiffusionPipeline, cfg, seeds: list[int], scheduler_config) -> Measurement:
    """diffusers' pipeline call with the same prompt, steps, size, scheduler and per-image generators."""
    pipe.scheduler = make_scheduler(cfg.scheduler.name, scheduler_config, {}, seeds)
    sync(pipe.device)
    with peak_memory(pipe.device) as memory:
        start = time.perf_counter()
        images = pipe(
            cfg.prompt,
            negative_prompt=cfg.negative_prompt or None,
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            height=cfg.height,
            width=cfg.width,
            num_images_per_prompt=len(seeds),
            generator=generators_for(seeds),
        ).images
        sync(pipe.device)
        seconds = time.perf_counter() - start
    return Measurement(seconds, memory["peak_mb"], images)


def pixel_error(images: list[Image.Image], reference: list[Image.Image]) -> dict[str, float]:
    """Max and mean absolute difference in 8-bit levels between two lists of images."""
    diff = np.abs(np.stack([np.asarray(i, dtype=np.int16) for i in images])
                  - np.stack([np.asarray(i, dtype=np.int16) for i in reference]))
    return {"max": float(diff.max()), "mean": float(diff.mean())}


def psnr(images: list[Image.Image], reference: list[Image.Image]) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images against a reference (inf when identical)."""
    a = np.stack([np.asarray(i, dtype=np.float64) for i in images])
    b = np.stack([np.asarray(i, dtype=np.float64) for i in reference])
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def vae_decode_cost(components: Components, size: int, tiled: bool) -> dict[str, float]:
    """Seconds and peak memory of decoding one size x size image, plain or tiled."""
    vae = components.vae
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    latents = torch.randn(1, 4, size // factor, size // factor, device=components.device, dtype=components.dtype)
    if tiled:
        vae.enable_tiling()
    try:
        with peak_memory(components.device) as memory, torch.no_grad():
            start = time.perf_counter()
            vae.decode(latents, return_dict=False)
            sync(components.device)
            seconds = time.perf_counter() - start
    finally:
        vae.disable_tiling()
    return {"seconds": seconds, "peak_mb": memory["peak_mb"]}
