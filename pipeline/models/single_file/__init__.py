"""Single-file checkpoints (`model.path: model.safetensors`, as A1111 and ComfyUI share them), read offline.

Each part is loaded by diffusers' own single-file loaders (`UNet2DConditionModel.from_single_file`,
`AutoencoderKL.from_single_file`, `create_diffusers_clip_model_from_ldm` for the text encoder), with the JSON config
folders kept in `configs/single_file/` instead of the hub's: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm, load_single_file_checkpoint
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from pipeline.common.file_checks import quietly
from pipeline.common.errors import UserError, first_line
from pipeline.models.single_file.detect import check_fit, config_folder, in_channels
from pipeline.models.single_file.header import is_checkpoint_file, read_header

__all__ = ["is_checkpoint_file", "read_configs", "load_checkpoint", "model_hash"]


def _config(cls: Any, folder: Path, part: str) -> dict[str, Any]:
    """One part's config from the folder, or a sentence naming the file."""
    try:
        with quietly():
            return dict(cls.load_config(folder, subfolder=part))
    except (OSError, ValueError) as err:
        raise UserError(f"model.config folder {folder} has no readable {part} config ({first_line(err)}).") from None


def read_configs(path: str, allow_pickle: bool, config: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The config folder for a checkpoint file and its unet / vae / scheduler / text_encoder configs, after checking
    that every tensor they need is in the file with its shape. No weights are loaded (a .ckpt is read weights-only)."""
    file = Path(path)
    header = read_header(file, allow_pickle)
    folder = config_folder(header, file, config)
    from diffusers import PNDMScheduler  # the scheduler config's reader; any scheduler class reads the same file

    configs = {"unet": _config(UNet2DConditionModel, folder, "unet"), "vae": _config(AutoencoderKL, folder, "vae")}
    configs["unet"]["in_channels"] = in_channels(header) or configs["unet"]["in_channels"]
    check_fit(header, file, folder, configs)
    configs["scheduler"] = _config(PNDMScheduler, folder, "scheduler")
    configs["text_encoder"] = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder").to_dict()
    return folder, configs


def load_checkpoint(path: str, folder: str, in_channels: int, dtype: torch.dtype) -> tuple:
    """Tokenizer, text encoder, UNet and VAE from one checkpoint file, each by diffusers' single-file loader."""
    with quietly():
        checkpoint = load_single_file_checkpoint(path, local_files_only=True)
        shared = {"config": folder, "local_files_only": True, "torch_dtype": dtype}
        unet = UNet2DConditionModel.from_single_file(checkpoint, subfolder="unet", in_channels=in_channels, **shared)
        vae = AutoencoderKL.from_single_file(checkpoint, subfolder="vae", **shared)
        text_encoder = create_diffusers_clip_model_from_ldm(
            CLIPTextModel, checkpoint, subfolder="text_encoder", config=folder, torch_dtype=dtype,
            local_files_only=True,
        )
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    return tokenizer, text_encoder, unet, vae


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
