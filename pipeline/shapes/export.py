"""Stage 4: write the trained family as a diffusers StableDiffusionPipeline folder (safetensors)."""

import json
import shutil
from pathlib import Path

import diffusers
from diffusers import AutoencoderKL, DDIMScheduler

from pipeline.shapes.models import SCHEDULER_CONFIG
from pipeline.shapes.unet_train import Models
from pipeline.shapes.vocab import save_tokenizer

MODEL_INDEX: dict[str, object] = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def folder_size(folder: Path) -> int:
    """Total bytes of the files under a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def export_model(models: Models, vae: AutoencoderKL, target: Path) -> int:
    """Write the folder next to `target`, then swap it in; return its size in bytes."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    unet, text_encoder = models
    unet.save_pretrained(staging / "unet", safe_serialization=True)
    text_encoder.save_pretrained(staging / "text_encoder", safe_serialization=True)
    vae.save_pretrained(staging / "vae", safe_serialization=True)
    DDIMScheduler.from_config(SCHEDULER_CONFIG).save_pretrained(staging / "scheduler")
    save_tokenizer(staging / "tokenizer")
    index = {**MODEL_INDEX, "_diffusers_version": diffusers.__version__}
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    return folder_size(target)
