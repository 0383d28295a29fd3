"""LoRA files (kohya / A1111 and diffusers / peft formats; SD 1.x/2.x, SDXL, SD3 and FLUX) applied to separately
loaded parts through diffusers' own LoRA loaders (the family's: StableDiffusionXLLoraLoaderMixin for UNets,
SD3LoraLoaderMixin, FluxLoraLoaderMixin, which also converts kohya's and other FLUX layouts) and peft: checked on
meta-device copies before any weights load, then loaded for real. Each key's first part names the part it is for:
unet or transformer, text_encoder or text_encoder_2 (kohya's lora_unet_/lora_te_/lora_te1_/lora_te2_, converted by
diffusers)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers.configuration_utils import FrozenDict
from diffusers.loaders import FluxLoraLoaderMixin, SD3LoraLoaderMixin, StableDiffusionXLLoraLoaderMixin
from diffusers.loaders.lora_base import set_adapters_for_text_encoder

from pipeline.common.errors import UserError, first_line
from pipeline.common.file_checks import check_file, quietly

SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
LOADERS = {"SD3Transformer2DModel": SD3LoraLoaderMixin, "FluxTransformer2DModel": FluxLoraLoaderMixin}  # else UNets'


def loader_for(denoiser_config: dict[str, Any]):
    """diffusers' LoRA loader for the denoiser a config describes."""
    return LOADERS.get(denoiser_config.get("_class_name", ""), StableDiffusionXLLoraLoaderMixin)


def denoiser_name(family) -> str:
    """How messages name the family's denoiser: UNet, or transformer."""
    return "UNet" if family.denoiser == "unet" else family.denoiser


def _takes(function, name: str) -> bool:
    """Whether a loader function has the named parameter (the loaders differ: FLUX's take network alphas)."""
    return name in inspect.signature(function).parameters


@dataclass
class Lora:
    """One LoRA to apply: its adapter name, file, weight and the state dict read (and checked) before loading."""

    name: str
    path: Path
    weight: float
    state_dict: dict[str, torch.Tensor]
    alphas: Any
    metadata: Any


def find_in_dir(name: str, lora_dir: str) -> Path:
    """The file a `<lora:name:...>` tag names: lora_dir/name with a known suffix (A1111's lookup by file name). A
    name is a file name only: a path separator, '..' or an absolute path would reach outside lora_dir."""
    if "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
        raise UserError(f"prompt tag <lora:{name}> must name a file of lora_dir by its name alone, without folders, "
                        "'..' or an absolute path; list a LoRA from elsewhere under loras: instead.")
    for suffix in SUFFIXES:
        path = Path(lora_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    raise UserError(f"prompt tag <lora:{name}> names no file in lora_dir {lora_dir} "
                    f"(looked for {name} with {', '.join(SUFFIXES)}).")


def read_lora(path: Path, key: str, allow_pickle: bool, unet_config: dict[str, Any]) -> tuple[dict, Any, Any]:
    """A LoRA file's state dict in diffusers' layout (kohya keys converted by diffusers, SDXL's SGM block numbers
    mapped by the UNet's config as pipe.load_lora_weights does), or one sentence why not."""
    check_file(path, key, SUFFIXES, allow_pickle)
    loader = loader_for(unet_config)
    extra = {"unet_config": FrozenDict(unet_config)} if loader is StableDiffusionXLLoraLoaderMixin else {}
    if _takes(loader.lora_state_dict, "return_alphas"):
        extra["return_alphas"] = True
    try:
        with quietly():
            read = loader.lora_state_dict(str(path), return_lora_metadata=True,
                                          use_safetensors=path.suffix == ".safetensors", **extra)
            state, alphas, metadata = read if len(read) == 3 else (read[0], None, read[1])
    except Exception as err:  # the loaders raise many types for a file that is not a LoRA
        raise UserError(f"{key} {path} is not a LoRA file diffusers can read ({first_line(err)}).") from None
    if not state or not all("lora" in k for k in state):
        first = next(iter(state), "")
        raise UserError(f"{key} {path} is not a LoRA file: its keys are not LoRA weights (first: {first}).")
    return state, alphas, metadata


def _inject(loras: list[Lora], denoiser, text_encoders: dict[str, Any]) -> None:
    """Each LoRA into the denoiser and the text encoders (keyed by part name, the prefix of their keys in a LoRA
    file) with the family's diffusers loader, as pipe.load_lora_weights does."""
    loader = loader_for(dict(denoiser.config))
    for lora in loras:
        state = dict(lora.state_dict)  # the loaders pop from what they get: a copy each
        if loader is StableDiffusionXLLoraLoaderMixin:
            loader.load_lora_into_unet(state, lora.alphas, denoiser, adapter_name=lora.name, metadata=lora.metadata)
        else:
            alphas = {"network_alphas": lora.alphas} if _takes(loader.load_lora_into_transformer, "network_alphas") \
                else {}
            loader.load_lora_into_transformer(state, transformer=denoiser, adapter_name=lora.name,
                                              metadata=lora.metadata, **alphas)
        for prefix, text_encoder in text_encoders.items():
            loader.load_lora_into_text_encoder(dict(lora.state_dict), lora.alphas, text_encoder, prefix=prefix,
                                               adapter_name=lora.name, metadata=lora.metadata)


def _adapters(module) -> set[str]:
    """Names of the LoRA adapters peft put into a module tree."""
    return {name for m in module.modules() for name in getattr(m, "lora_A", {})}


def layers_named(state_dict: dict[str, torch.Tensor]) -> set[str]:
    """The layers a LoRA state dict names: each key up to its lora part (`.lora_A.`, `.lora.down.`, `_lora.up.`,
    `.lora_magnitude_vector`)."""
    return {re.split(r"[._]lora[._]", key, maxsplit=1)[0] for key in state_dict}


def _injected(name: str, modules) -> int:
    """How many modules of the given trees hold the named adapter."""
    return sum(name in getattr(m, "lora_A", {}) for tree in modules for m in tree.modules())


def _reason(err: Exception) -> str:
    """The first size mismatch torch names when loading the weights, or the error's first line."""
    mismatches = [line.strip() for line in str(err).splitlines() if line.strip().startswith("size mismatch")]
    return mismatches[0] if mismatches else first_line(err)


def check_parts(lora: Lora, family) -> None:
    """Every key is for a part the model has: a LoRA with text_encoder_2 weights (SDXL's) on a one-encoder model,
    or with text_encoder weights on the SDXL refiner, was made for another model."""
    parts = {family.denoiser, *(name for _, name in family.text_pairs)}
    others = sorted({key.split(".", 1)[0] for key in lora.state_dict} - parts)
    if others:
        raise UserError(f"LoRA {lora.path} has weights for {' and '.join(others)}, which this {family.label} model "
                        f"does not have (it has {', '.join(sorted(parts))}); it was made for another model.")


def check_fit(loras: list[Lora], family, configs: dict[str, dict]) -> None:
    """Check each LoRA's parts, then inject it into meta-device copies of the family's UNet and text encoders,
    built from their configs (no memory, no weights): a LoRA whose keys fit no module, or fit with the wrong shapes,
    is refused here, before the real parts load."""
    for lora in loras:
        check_parts(lora, family)
    with init_empty_weights(), quietly():
        unet = family.part(family.denoiser).loader.from_config(configs[family.denoiser])
        encoders = {}
        for _, name in family.text_pairs:
            part = family.part(name)
            encoders[name] = part.loader(part.config.from_dict(configs[name]))
        for lora in loras:
            try:
                _inject([lora], unet, encoders)
            except Exception as err:
                raise UserError(f"LoRA {lora.path} does not fit this model's {denoiser_name(family)} and text encoder"
                                f"{'s' if len(encoders) > 1 else ''} ({_reason(err)}); it was made for another "
                                f"model than this {family.label} one.") from None
            if lora.name not in set().union(_adapters(unet), *map(_adapters, encoders.values())):
                raise UserError(f"LoRA {lora.path}: none of its keys fit a module of this model's "
                                f"{denoiser_name(family)} or text encoder (first key: {next(iter(lora.state_dict))}).")
            named, landed = len(layers_named(lora.state_dict)), _injected(lora.name, [unet, *encoders.values()])
            if landed < named:  # diffusers' loaders skip keys in a second naming without a word
                raise UserError(f"LoRA {lora.path} names {named} layers but only {landed} of them fit this model's "
                                "modules as diffusers reads the file (keys in two namings, or made for another "
                                "model); the rest would be dropped silently.")


def apply_loras(loras: list[Lora], unet, text_encoders: dict[str, Any]) -> None:
    """Load the LoRAs into the real parts and set each one's weight (pipe.set_adapters' split per part)."""
    if not loras:
        return
    with quietly():
        _inject(loras, unet, text_encoders)
    unet_loras = [lora for lora in loras if lora.name in _adapters(unet)]
    if unet_loras:
        unet.set_adapters([lora.name for lora in unet_loras], [lora.weight for lora in unet_loras])
    for text_encoder in text_encoders.values():
        text_loras = [lora for lora in loras if lora.name in _adapters(text_encoder)]
        if text_loras:
            set_adapters_for_text_encoder([lora.name for lora in text_loras], text_encoder,
                                          [lora.weight for lora in text_loras])


@functools.lru_cache(maxsize=64)
def addnet_hash(path: str) -> str:
    """A1111's short LoRA hash: sha256 of a safetensors file's tensor bytes (after its header), first 12 hex digits;
    for other files, of the whole file. Read once per run and file."""
    data = Path(path).read_bytes()
    if path.endswith(".safetensors") and len(data) >= 8:
        data = data[8 + int.from_bytes(data[:8], "little"):]
    return hashlib.sha256(data).hexdigest()[:12]
