"""A depth estimator (transformers' DPT, or any model AutoModelForDepthEstimation loads) and its image processor:
where one lives, loading it, and its prediction for a picture. depth2img's estimate (variants/) and the ControlNet
depth map (controls/) both call `predict_depth`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation
from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING

from pipeline.common.errors import UserError

PARTS = ("depth_estimator", "feature_extractor")  # a depth2img model folder's estimator and its image processor


@dataclass(frozen=True)
class Source:
    """Where an estimator's model and image processor are read from: a path or hub id, and a subfolder of each."""

    path: str
    model_subfolder: str = ""
    processor_subfolder: str = ""


def source_of(path: str, key: str, allow_pickle: bool = False) -> Source:
    """A folder or hub id holding a depth estimator (config.json and preprocessor_config.json, as Intel/dpt-large
    does) or a model folder holding one in depth_estimator/ and feature_extractor/ (a depth2img model); its config
    read (no weights) to check it is one, and a local one's weights in .safetensors unless pickles are allowed; else
    one sentence naming `key`."""
    folder = Path(path)
    if all((folder / part).is_dir() for part in PARTS):
        source = Source(path, *PARTS)
    elif folder.is_file():
        raise UserError(f"{key} {path} is a file; a depth estimator folder or hub id (config.json and "
                        "preprocessor_config.json) is needed.")
    elif not folder.exists() and (folder.is_absolute() or path.startswith(".") or path.count("/") != 1):
        raise UserError(f"{key} {path} does not exist (a depth estimator folder or an owner/name hub id is needed).")
    else:
        source = Source(path)
    try:
        config = AutoConfig.from_pretrained(source.path, subfolder=source.model_subfolder)
    except (OSError, ValueError):
        raise UserError(f"{key} {path} holds no model config.json that transformers reads (a local folder, or a hub "
                        "id in the cache when offline).") from None
    if type(config) not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING:
        raise UserError(f"{key} {path} holds a {config.model_type} model, not a depth estimator (DPT, ...).")
    weights = Path(source.path) / source.model_subfolder
    if weights.is_dir() and not allow_pickle and not any(weights.glob("*.safetensors")):
        raise UserError(f"{key} {path} has no .safetensors weights; set model.allow_pickle=true to load its pickle "
                        "weights (weights only).")
    return source


def load_estimator(source: Source, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False
                   ) -> tuple[Any, Any]:
    """The estimator (on the device, in the dtype, evaluation mode; safetensors only unless pickles are allowed) and
    its image processor."""
    processor = AutoImageProcessor.from_pretrained(source.path, subfolder=source.processor_subfolder)
    model = AutoModelForDepthEstimation.from_pretrained(source.path, subfolder=source.model_subfolder, dtype=dtype,
                                                        use_safetensors=None if allow_pickle else True)
    return model.to(device).eval().requires_grad_(False), processor


def predict_depth(estimator: Any, processor: Any, image: Image.Image) -> torch.Tensor:
    """(1, H', W') relative depth of one picture at the estimator's own resolution, larger = nearer (DPT's
    predicted_depth)."""
    pixels = processor(images=[image], return_tensors="pt").pixel_values
    with torch.no_grad():
        return estimator(pixels.to(estimator.device, estimator.dtype)).predicted_depth
