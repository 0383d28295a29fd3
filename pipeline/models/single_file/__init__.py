"""Single-file checkpoints (`model.path: model.safetensors`, as A1111 and ComfyUI share them), read offline.

The UNet and VAE are loaded by diffusers' own single-file loaders (`UNet2DConditionModel.from_single_file`,
`AutoencoderKL.from_single_file`), each text encoder (one for SD 1.x / 2.x, two for SDXL, one for its refiner) from
the family's conversion (diffusers' `convert_ldm_clip_checkpoint` / `convert_open_clip_checkpoint` at its key
prefix), with the JSON config folders kept in `configs/single_file/` instead of the hub's: nothing is downloaded.
SD3's and FLUX's released files are read by `flow.py` the same way, with the parts a file lacks from model.config.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import load_single_file_checkpoint

from pipeline.common.file_checks import quietly
from pipeline.models.families import Family
from pipeline.models.single_file.encoders import build_text_encoder
from pipeline.models.single_file.detect import (
    check_fit,
    config_folder,
    in_channels,
    pick_family,
    read_part_config,
    text_configs,
)
from pipeline.models.single_file.flow import load_flow_checkpoint, read_flow_configs
from pipeline.models.single_file.header import is_checkpoint_file, read_header

__all__ = ["is_checkpoint_file", "read_configs", "load_checkpoint", "model_hash"]


def read_configs(path: str, allow_pickle: bool, config: str, without: tuple[str, ...] = ()
                 ) -> tuple[Path, dict[str, dict[str, Any]], tuple[str, ...]]:
    """The config folder for a checkpoint file, the configs of the parts a run loads (the denoiser, vae, scheduler
    and each text encoder of the family its keys show) and, for a flow family, those parts (() = all the family's),
    after checking that every tensor they need is in the file with its shape. No weights are loaded (a .ckpt is read
    weights-only). `without` (model.without) names optional parts to leave out."""
    file = Path(path)
    header = read_header(file, allow_pickle)
    folder = config_folder(header, file, config)
    family = pick_family(header, file)
    if family.flow_file is not None:
        configs, loaded = read_flow_configs(header, file, folder, family, allow_pickle, without)
        return folder, configs, loaded
    from diffusers import PNDMScheduler  # the scheduler config's reader; any scheduler class reads the same file

    configs = {"unet": read_part_config(UNet2DConditionModel, folder, "unet"),
               "vae": read_part_config(AutoencoderKL, folder, "vae")}
    configs["unet"]["in_channels"] = in_channels(header) or configs["unet"]["in_channels"]
    texts = text_configs(folder, family)
    check_fit(header, file, folder, configs, texts)
    configs["scheduler"] = read_part_config(PNDMScheduler, folder, "scheduler")
    configs.update({part: text.to_dict() for part, text in texts.items()})
    return folder, configs, ()


def _text_encoder(family: Family, part: str, text_config: Any, checkpoint: dict, dtype: torch.dtype):
    """One text encoder: built without weights, given the checkpoint's tensors as the family converts them (the
    conversion the checks ran on the meta device), in the dtype."""
    tensors = family.single_file.convert_text(checkpoint, text_config)
    return build_text_encoder(family.part(part).loader, text_config, tensors, dtype)


def load_checkpoint(path: str, folder: str, family: Family, in_channels: int, dtype: torch.dtype,
                    vae_dtype: torch.dtype, names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The family's tokenizers, text encoders, UNet and VAE (or only the parts `names` lists) from one checkpoint
    file, by name; the UNet and VAE by diffusers' single-file loaders."""
    names = names or tuple(part.name for part in family.parts if part.name != "scheduler")
    if family.flow_file is not None:
        return load_flow_checkpoint(path, folder, family, dtype, vae_dtype, names)
    parts: dict[str, Any] = {}
    texts = text_configs(Path(folder), family)
    with quietly():
        checkpoint = load_single_file_checkpoint(path, local_files_only=True)
        shared = {"config": folder, "local_files_only": True}
        if "unet" in names:
            parts["unet"] = UNet2DConditionModel.from_single_file(checkpoint, subfolder="unet", in_channels=in_channels,
                                                                  torch_dtype=dtype, **shared)
        if "vae" in names:
            parts["vae"] = AutoencoderKL.from_single_file(checkpoint, subfolder="vae", torch_dtype=vae_dtype, **shared)
        for tokenizer, encoder in family.text_pairs:
            if encoder in names:
                parts[encoder] = _text_encoder(family, encoder, texts[encoder], checkpoint, dtype)
            if tokenizer in names:
                parts[tokenizer] = family.part(tokenizer).loader.from_pretrained(folder, subfolder=tokenizer)
    return parts


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def model_hash(path: str) -> str:
    """A1111's `Model hash` of a checkpoint file: sha256 of the whole file, first 10 hex digits (computed once per
    file and modification time in a process)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime)[:10]
