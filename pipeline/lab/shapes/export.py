"""Stage 4: write the trained family as a diffusers StableDiffusionPipeline folder (safetensors)."""

import copy
import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler

from pipeline.lab.shapes.models import SCHEDULER_CONFIG
from pipeline.lab.shapes.unet_train import Models
from pipeline.lab.shapes.vocab import save_tokenizer
from pipeline.lab.fixtures.tiny_model import write_model_index


def folder_size(folder: Path) -> int:
    """Total bytes of the files under a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def export_scaling(base: Path) -> float:
    """The exported model's VAE scaling factor, which the later stages multiply its latents by."""
    return float(json.loads((base / "vae" / "config.json").read_text())["scaling_factor"])


def save_weights(model: torch.nn.Module, folder: Path, dtype: torch.dtype = torch.float32) -> None:
    """Write a model's weights in `dtype` (float16 halves the shipped family's size; loading casts them to the run's
    dtype), leaving the trained model as it is."""
    copy.deepcopy(model).to(dtype).save_pretrained(folder, safe_serialization=True)


def export_model(
    models: Models, vae: AutoencoderKL, target: Path, scheduler: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Write the folder next to `target`, then swap it in; return its size in bytes."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    unet, text_encoder = models
    save_weights(unet, staging / "unet", dtype)
    save_weights(vae, staging / "vae", dtype)
    # transformers 5 loads a model in its stored dtype by default (diffusers' models load in float32), so a half
    # text encoder would break a plain `StableDiffusionPipeline.from_pretrained` on CPU; it is 0.4 MB in float32
    save_weights(text_encoder, staging / "text_encoder")
    DDIMScheduler.from_config(scheduler or SCHEDULER_CONFIG).save_pretrained(staging / "scheduler")
    save_tokenizer(staging / "tokenizer")
    write_model_index(staging, "DDIMScheduler")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    return folder_size(target)
