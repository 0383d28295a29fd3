"""Which configs a single-file checkpoint is read with, and whether its tensors fit them, before any weights load.

The family comes from the checkpoint's keys: each model family (models/families) names the key prefix of its text
encoder (OpenCLIP's `cond_stage_model.model.*` for SD 2.x, CLIP's `cond_stage_model.transformer.*` for SD 1.x,
`conditioner.embedders.0.transformer.*` for an SDXL base, `conditioner.embedders.0.model.*` for an SDXL refiner) and
picks its config folder from the header: SD 2.x's 512 base model (epsilon) and its 768 model (v-prediction) have the
same keys and shapes, so, as diffusers' `from_single_file` does, a checkpoint recording `global_step` 875000 (the
2.x base release) is read as `sd2-base`, any other as `sd2`. `model.config` names another config folder or a
folder of diffusers-format configs. Every text encoder the family has (SDXL's two) is checked and read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from transformers import CLIPTextConfig

from pipeline.common.file_checks import quietly
from pipeline.common.errors import UserError, first_line
from pipeline.models.weights_check import expected_tensors
from pipeline.models.families import FAMILIES, Family
from pipeline.models.single_file.header import UNET, VAE, Header

FAMILIES_DIR = Path(__file__).resolve().parents[3] / "configs" / "single_file"
# the folders of configs/single_file that model.config may name
CONFIG_FOLDERS = ("sd1", "sd2", "sd2-base", "sdxl", "sdxl-refiner")
CONV_IN = UNET + "input_blocks.0.0.weight"


def pick_family(header: Header, path: Path) -> Family:
    """The family whose text encoder keys the checkpoint holds; a file without the three parts is one sentence."""
    for prefix, part in ((UNET, "UNet"), (VAE, "VAE")):
        if not header.has(prefix):
            raise UserError(f"model.path {path} holds no {part} in the original layout ({prefix}*): it is not a "
                            "whole Stable Diffusion checkpoint (a LoRA, an embedding or a single part?).")
    readable = [family for family in FAMILIES.values() if family.single_file is not None]
    for family in readable:
        if header.has(family.single_file.text_key):
            return family
    keys = " or ".join(f"{family.single_file.text_key}* ({family.label})" for family in readable)
    raise UserError(f"model.path {path} holds no text encoder of a known family ({keys}); "
                    "other families (SD 3, Flux) are not supported in one file.")


def config_folder(header: Header, path: Path, name: str) -> Path:
    """The folder of configs to read the checkpoint with: model.config's family or folder, else the picked family."""
    family = pick_family(header, path)
    name = name or family.single_file.config_name(header)
    if name in CONFIG_FOLDERS:
        return FAMILIES_DIR / name
    folder = Path(name)
    if not (folder / "unet" / "config.json").is_file():
        raise UserError(f"model.config must be one of {', '.join(CONFIG_FOLDERS)} or a folder of diffusers-format "
                        f"configs (unet/config.json, ...); got '{name}'.")
    return folder


def text_configs(folder: Path, family: Family) -> dict[str, CLIPTextConfig]:
    """The config of each of the family's text encoders, naming its model class (the family's part), or a sentence
    naming the one the folder lacks."""
    configs = {}
    for _, part in family.text_pairs:
        try:
            with quietly():
                configs[part] = CLIPTextConfig.from_pretrained(folder, subfolder=part)
        except (OSError, ValueError) as err:
            raise UserError(f"model.config folder {folder} has no readable {part} config ({first_line(err)}).") \
                from None
        configs[part].architectures = [family.part(part).loader.__name__]
    return configs


def _converted(header: Header, family: Family, configs: dict[str, dict[str, Any]],
               texts: dict[str, CLIPTextConfig]) -> dict[str, dict]:
    """The checkpoint's tensors under diffusers' names, per part, converted on the meta device by diffusers' own
    single-file conversions (the ones loading uses)."""
    meta = {name: torch.empty(shape, device="meta") for name, shape in header.tensors.items()}
    with quietly():
        converted = {"unet": convert_ldm_unet_checkpoint(meta, configs["unet"]),
                     "vae": convert_ldm_vae_checkpoint(meta, configs["vae"])}
        for part, text_config in texts.items():
            converted[part] = family.single_file.convert_text(meta, text_config)
    return converted


def check_fit(header: Header, path: Path, folder: Path, configs: dict[str, dict[str, Any]],
              texts: dict[str, CLIPTextConfig]) -> None:
    """Every tensor the configs' models need is in the checkpoint with its shape; else one sentence saying which."""
    family = pick_family(header, path)
    converted = _converted(header, family, configs, texts)
    for part in converted:
        found = {name.removeprefix("text_model."): tuple(t.shape) for name, t in converted[part].items()}
        for name, shape in expected_tensors(family.part(part), folder / part, configs.get(part, {})).items():
            have = found.get(name.removeprefix("text_model."))
            if have != shape:
                state = "lacks it" if have is None else f"has {list(have)}"
                raise UserError(f"model.path {path} does not fit the {part} of {folder}: {name} must have shape "
                                f"{list(shape)} and the checkpoint {state}; set model.config to the family or "
                                "config folder it was trained as.")


def in_channels(header: Header) -> int | None:
    """The UNet's input channels as stored (9 for an inpainting checkpoint)."""
    shape = header.tensors.get(CONV_IN)
    return shape[1] if shape and len(shape) == 4 else None
