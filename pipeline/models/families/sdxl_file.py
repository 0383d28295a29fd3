"""How SDXL base and refiner checkpoints in Stability's original layout (generative-models, as A1111 and ComfyUI share
them) are recognised and their text encoders read.

The base holds CLIP ViT-L as `conditioner.embedders.0.transformer.*` (text_encoder) and OpenCLIP ViT-bigG as
`conditioner.embedders.1.model.*` (text_encoder_2); the refiner holds only OpenCLIP bigG, as
`conditioner.embedders.0.model.*`. Both are converted by diffusers' own single-file conversions.
"""

from __future__ import annotations

import torch
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from pipeline.models.families.family import SingleFile

CLIP_L, BIG_G, REFINER_BIG_G = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.", \
    "conditioner.embedders.0.model."


def convert_sdxl_text(tensors: dict, text_config: CLIPTextConfig) -> dict:
    """One SDXL text encoder's tensors under diffusers' names: OpenCLIP bigG where the config names
    CLIPTextModelWithProjection (text_encoder_2; embedders.1 in a base, embedders.0 in a refiner), CLIP ViT-L
    otherwise (text_encoder)."""
    if "CLIPTextModelWithProjection" not in (text_config.architectures or ()):
        return convert_ldm_clip_checkpoint(tensors)  # diffusers strips conditioner.embedders.0.transformer. itself
    prefix = BIG_G if any(name.startswith(BIG_G) for name in tensors) else REFINER_BIG_G
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(text_config)  # the converter reads only its config
    return convert_open_clip_checkpoint(model, tensors, prefix=prefix)


SDXL_FILE = SingleFile(CLIP_L, lambda header: "sdxl", convert_sdxl_text)
REFINER_FILE = SingleFile(REFINER_BIG_G, lambda header: "sdxl-refiner", convert_sdxl_text)
