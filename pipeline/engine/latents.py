"""Latent-space basics: seeded noise, VAE encode/decode scaled by vae.config.scaling_factor (and shifted by its
shift_factor, SD3's and FLUX's), image <-> tensor."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from pipeline.engine.nonfinite import NonFiniteError, decode_failure, is_finite

log = logging.getLogger("pipeline")
FLOAT32_DECODE = "decodes_in_float32"  # set on a half-precision VAE whose decode has overflowed once


def generators_for(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded seed + i, so an image depends on its seed alone."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Gaussian noise of `shape` per image, drawn on the CPU from that image's generator, then moved."""
    noise = [torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.cat(noise).to(device=device, dtype=dtype)


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images in [0, 1]: undo the scaling factor, decode, map [-1, 1] to [0, 1].

    A half-precision decode that overflows to NaN is retried in float32, and every later decode of the run goes
    straight to float32; between decodes the VAE keeps its dtype, so img2img's encodes (and so every image) stay
    what the same seed gives alone. Images that are still not finite raise NonFiniteError, never a black picture.
    """
    with torch.no_grad():
        if getattr(vae, FLOAT32_DECODE, False):
            images = _decode_in_float32(vae, latents)
        else:
            images = _vae_decode(vae, latents)
            if vae.dtype != torch.float32 and not is_finite(images):
                log.warning(f"the VAE decode in {vae.dtype} gave NaN or inf; decoding again in float32, "
                            "as the rest of the run will")
                setattr(vae, FLOAT32_DECODE, True)
                images = _decode_in_float32(vae, latents)
        if not is_finite(images):
            raise NonFiniteError(decode_failure(latents, images))
    return (images / 2 + 0.5).clamp(0, 1)


def _vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """The VAE's decode of scaled latents, given in the VAE's dtype."""
    latents = latents.to(vae.dtype) / vae.config.scaling_factor + shift_of(vae)
    return vae.decode(latents, return_dict=False)[0]


def shift_of(vae) -> float:
    """The VAE's latent shift (SD3's 0.0609, FLUX's 0.1159; none for SD 1.x, 2.x and XL)."""
    return getattr(vae.config, "shift_factor", None) or 0.0


def _decode_in_float32(vae, latents: torch.Tensor) -> torch.Tensor:
    """Decode with the VAE cast to float32, then cast it back (exactly: its weights were loaded in its dtype).

    torch's own Module.to, because diffusers' warns on every dtype cast of a model.
    """
    dtype = vae.dtype
    torch.nn.Module.to(vae, torch.float32)
    try:
        return _vae_decode(vae, latents)
    finally:
        torch.nn.Module.to(vae, dtype)


def encode(vae, images: torch.Tensor, generators: list[torch.Generator] | None) -> torch.Tensor:
    """Images in [-1, 1] -> scaled latents: the mean, or image i sampled with generator i (one VAE call each).

    A single image is encoded once per generator, as diffusers' img2img does, so each output image's latent
    depends on its own seed alone.
    """
    dtype, images = images.dtype, images.to(vae.dtype)  # a VAE kept in float32 (force_upcast) encodes in it
    with torch.no_grad():
        if generators is None:
            latents = vae.encode(images, return_dict=False)[0].mean
        else:
            images = images.expand(len(generators), -1, -1, -1) if len(images) == 1 else images
            latents = torch.cat(
                [vae.encode(images[i : i + 1], return_dict=False)[0].sample(generator=g) for i, g in enumerate(generators)]
            )
    return ((latents - shift_of(vae)) * vae.config.scaling_factor).to(dtype)


def latent_mask(mask: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """A (1, 1, H, W) pixel mask resized to the latent grid (nearest), as diffusers' prepare_mask_latents does."""
    return torch.nn.functional.interpolate(mask, size=latent_size)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images in [0, 1] (N, C, H, W) -> 8-bit PIL images, rounding as diffusers' image processor does."""
    array = images.permute(0, 2, 3, 1).float().cpu().numpy()
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in array]


def from_pil(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> a (1, 3, H, W) tensor in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1
