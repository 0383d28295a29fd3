"""Which config a single-file ControlNet is read with, and whether its tensors fit it, before any weights load.

The layout comes from the file's tensor names and shapes, as diffusers' `infer_diffusers_model_type` tells them
apart: lllyasviel's original layout (`control_model.time_embed.0.weight`, the SD 1.5 ControlNet v1.1 releases such
as control_v11p_sd15_canny) or diffusers' own names in one file (`controlnet_cond_embedding.conv_in.weight`), SDXL
when it has `add_embedding.linear_1.weight` (diffusers/controlnet-canny-sdxl-1.0), SD 1.x when its cross-attention
reads 768 features. Each maps to a folder shipped in configs/single_file (controlnet-sd15, controlnet-sdxl), the
configs of the releases diffusers' `from_single_file` would fetch from the hub; nothing is downloaded. `config`
names one of those folders, or any folder or hub id holding a ControlNet's config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from accelerate import init_empty_weights
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from safetensors import SafetensorError, safe_open

from pipeline.common.errors import UserError, first_line
from pipeline.common.file_checks import quietly

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "configs" / "single_file"
SHIPPED = ("controlnet-sd15", "controlnet-sdxl")  # the folders of configs/single_file that `config` may name
ORIGINAL, DIFFUSERS = "control_model.time_embed.0.weight", "controlnet_cond_embedding.conv_in.weight"
SDXL_KEY = "add_embedding.linear_1.weight"
CROSS_ATTENTION = "attn2.to_k.weight"  # a cross-attention's key projection: it reads the text encoder's width
SD1_CONTEXT = 768  # CLIP ViT-L/14's width, what SD 1.x's cross-attention reads


def read_tensors(path: str, key: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes from the file's safetensors header, or one sentence naming `key`."""
    try:
        with safe_open(path, "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{key} {path} cannot be read as a .safetensors file ({first_line(err)}).") from None


def detected_layout(tensors: dict[str, tuple[int, ...]]) -> Optional[str]:
    """The shipped config folder whose layout the tensor names and shapes show, or None."""
    marker = next((name for name in (ORIGINAL, DIFFUSERS) if name in tensors), None)
    if marker is None:
        return None
    if marker == DIFFUSERS and SDXL_KEY in tensors:
        return "controlnet-sdxl"
    widths = {shape[-1] for name, shape in tensors.items() if name.endswith(CROSS_ATTENTION)}
    return "controlnet-sd15" if widths == {SD1_CONTEXT} else None


def config_source(entry: Any, key: str) -> str:
    """The folder or hub id the single file's config is read from: `config` (a shipped name resolved to its
    folder), else the shipped folder of the layout its header shows, else one sentence asking for `config`."""
    if entry.config:
        return str(SHIPPED_DIR / entry.config) if entry.config in SHIPPED else entry.config
    layout = detected_layout(read_tensors(entry.path, f"{key}.path"))
    if layout is None:
        raise UserError(f"{key}.path {entry.path} is a single file in a layout without a shipped config (those are "
                        f"{', '.join(SHIPPED)}); set {key}.config to the folder or hub id holding its config.json.")
    return str(SHIPPED_DIR / layout)


def check_tensors(tensors: dict[str, tuple[int, ...]], config: dict[str, Any], key: str, path: str,
                  source: str) -> None:
    """Every tensor the config's ControlNet has is in the file with its shape, after diffusers' own conversion of
    the original names (on the meta device); else one sentence naming the first that differs."""
    meta = {name: torch.empty(shape, device="meta") for name, shape in tensors.items()}
    with quietly():
        converted = convert_controlnet_checkpoint(meta, config)
        with init_empty_weights():
            model = ControlNetModel.from_config(config)
    found = {name: tuple(t.shape) for name, t in converted.items() if t is not None}
    for name, param in model.state_dict().items():
        have = found.get(name)
        if have != tuple(param.shape):
            state = "lacks it" if have is None else f"has {list(have)}"
            raise UserError(f"{key}.path {path} does not fit the ControlNet config of {source}: {name} must have "
                            f"shape {list(param.shape)} and the file {state}; set {key}.config to the folder or hub "
                            "id of the config it was trained with.")
