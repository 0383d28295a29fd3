"""IP-Adapter (Ye et al., 2023): a reference picture's CLIP image embeddings, projected to a few extra tokens that the
UNet's cross-attention layers attend to beside the text, scaled by the entry's weight. The weights load onto our
UNet with diffusers' own loader (UNet2DConditionLoadersMixin._load_ip_adapter_weights, what load_ip_adapter calls);
the embeddings are made once per run as diffusers' encode_image makes them (the plain kind: the encoder's
image_embeds, zeros for the unconditional half; Plus: its penultimate hidden states, those of a zero image for the
unconditional half) and ride in the conditioning bundle as image_embeds.0, image_embeds.1, ..."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0
from diffusers.models.embeddings import ImageProjection
from omegaconf import DictConfig
from PIL import Image
from safetensors import safe_open
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image
from pipeline.common.quiet import quiet_libraries
from pipeline.controls.ip_adapter_check import check_entries, encoder_path
from pipeline.engine.conditioning import Conditioning
from pipeline.models.components import Components
from pipeline.models.inspect import ModelInfo

EMBEDS = "image_embeds"  # the bundle's name; models/unet_call.py gathers image_embeds.N into the UNet's list
Pair = tuple[torch.Tensor, torch.Tensor]  # one image's embeddings for the conditional and unconditional halves


@dataclass
class IPAdapters:
    """The vision encoder, its image processor, the UNet the adapters were loaded onto, and whether each adapter
    reads hidden states (Plus); the embeddings by the images that made them (a job's lines that share the load may
    change the images and weights)."""

    encoder: CLIPVisionModelWithProjection
    processor: CLIPImageProcessor
    unet: Any
    hidden: list[bool]
    embeds: dict[tuple[str, ...], list[Pair]] = field(default_factory=dict)


def check(cfg: DictConfig, info: ModelInfo, size: tuple[int, int]) -> None:
    """Attention slicing off, the encoder folder, and each entry's file, image and sizes (ip_adapter_check.py); the
    reference images are not maps of the picture, so the run's size does not bound them."""
    check_entries(cfg, info)


def weights(path: str) -> dict[str, dict[str, torch.Tensor]]:
    """A weight file as diffusers' loader takes it: {"image_proj": ..., "ip_adapter": ...} without the prefixes."""
    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(path, framework="pt", device="cpu") as file:
        for name in file.keys():
            part, _, rest = name.partition(".")
            if part in state:
                state[part][rest] = file.get_tensor(name)
    return state


def set_scales(unet, scales: list[float]) -> None:
    """Each IP-Adapter's weight in every IP attention processor (diffusers' set_ip_adapter_scale with one number
    per adapter)."""
    for processor in unet.attn_processors.values():
        if isinstance(processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)):
            processor.scale = list(scales)


def load(cfg: DictConfig, info: ModelInfo, components: Components) -> IPAdapters:
    """The vision encoder and the adapters' weights on our UNet (after the performance options, which set its
    attention processors)."""
    encoder = CLIPVisionModelWithProjection.from_pretrained(
        encoder_path(cfg, info), dtype=components.dtype, use_safetensors=None if cfg.model.allow_pickle else True)
    encoder = encoder.to(components.device).eval().requires_grad_(False)
    size = encoder.config.image_size
    unet = getattr(components.unet, "_orig_mod", components.unet)  # under performance.compile, the compiled module's
    try:
        with quiet_libraries():  # its closing cast warns of "modules to keep in float32: []", none
            unet._load_ip_adapter_weights([weights(entry.path) for entry in cfg.ip_adapters])
    except (KeyError, RuntimeError) as error:
        raise UserError(f"ip_adapters do not fit model.path {info.path}'s UNet: diffusers' loader says "
                        f"{str(error).splitlines()[0]}.") from None
    hidden = [not isinstance(layer, ImageProjection) for layer in unet.encoder_hid_proj.image_projection_layers]
    return IPAdapters(encoder, CLIPImageProcessor(size=size, crop_size=size), unet, hidden)


@torch.no_grad()
def embeddings(loaded: IPAdapters, image: Image.Image, hidden: bool) -> Pair:
    """One reference image's embeddings for both halves, one row of one image each, as diffusers' encode_image."""
    encoder = loaded.encoder
    pixels = loaded.processor(image, return_tensors="pt").pixel_values.to(encoder.device, encoder.dtype)
    if hidden:
        cond = encoder(pixels, output_hidden_states=True).hidden_states[-2]
        uncond = encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    else:
        cond = encoder(pixels).image_embeds
        uncond = torch.zeros_like(cond)
    return cond[None], uncond[None]


def prepare(loaded: IPAdapters, ctx: Any, conditioning: Conditioning) -> Conditioning:
    """Each adapter scaled by its weight, and the bundle with image_embeds.N for both halves, repeated for each image
    of the batch."""
    entries = list(ctx.cfg.ip_adapters)
    set_scales(loaded.unet, [float(entry.weight) for entry in entries])
    key = tuple(entry.image for entry in entries)
    if key not in loaded.embeds:
        images = [read_image(entry.image, f"ip_adapters[{n}].image") for n, entry in enumerate(entries)]
        loaded.embeds = {key: [embeddings(loaded, image, hidden) for image, hidden in zip(images, loaded.hidden)]}
    count = len(conditioning.cond["hidden_states"])

    def added(half: int) -> dict[str, torch.Tensor]:
        """Each adapter's embeddings for one half (0 conditional, 1 unconditional), one row per image."""
        return {f"{EMBEDS}.{n}": pair[half].repeat(count, *[1] * (pair[half].ndim - 1))
                for n, pair in enumerate(loaded.embeds[key])}

    uncond = {**conditioning.uncond, **added(1)} if conditioning.uncond is not None else None
    return Conditioning({**conditioning.cond, **added(0)}, uncond)


def fields(cfg: DictConfig) -> dict[str, str]:
    """One quoted unit per IP-Adapter (its file's name and weight), and the vision encoder's folder name."""
    result = {f"IP-Adapter {n}": f'"Model: {Path(entry.path).stem}, Weight: {entry.weight}"'
              for n, entry in enumerate(cfg.ip_adapters)}
    result["IP-Adapter encoder"] = Path(cfg.image_encoder).name if cfg.image_encoder else "image_encoder"
    return result
