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
from pipeline.models.families import FAMILIES, Family, Part
from pipeline.models.single_file.header import UNET, VAE, Header

FAMILIES_DIR = Path(__file__).resolve().parents[3] / "configs" / "single_file"
# the folders of configs/single_file that model.config may name, by the family whose configs they hold
CONFIG_FOLDERS = {"sd1": "sd1", "sd2": "sd2", "sd2-base": "sd2", "sdxl": "sdxl", "sdxl-refiner": "sdxl-refiner",
                  "sd3-medium": "sd3", "sd3.5-medium": "sd3", "sd3.5-large": "sd3", "flux-dev": "flux",
                  "flux-schnell": "flux"}
CONV_IN = UNET + "input_blocks.0.0.weight"


def flow_family(header: Header) -> Family | None:
    """The flow family (SD3, FLUX) whose transformer key the checkpoint holds, bare or under UNET's prefix."""
    for family in FAMILIES.values():
        marker = family.flow_file.marker if family.flow_file else None
        if marker and (marker in header.tensors or UNET + marker in header.tensors):
            return family
    return None


def pick_family(header: Header, path: Path) -> Family:
    """The family whose transformer keys (SD3, FLUX) or text encoder keys (SD 1.x, 2.x, SDXL) the checkpoint holds;
    a file without the three parts of an SD checkpoint is one sentence."""
    flow = flow_family(header)
    if flow is not None:
        return flow
    if not header.has(UNET):
        raise UserError(f"model.path {path} holds no UNet in the original layout ({UNET}*) and no SD3 or FLUX "
                        "transformer (joint_blocks.*, double_blocks.*): it is not a whole checkpoint (a LoRA, an "
                        "embedding or a single part?).")
    if not header.has(VAE):
        raise UserError(f"model.path {path} holds no VAE in the original layout ({VAE}*): it is not a whole Stable "
                        "Diffusion checkpoint (a LoRA, an embedding or a single part?).")
    readable = [family for family in FAMILIES.values() if family.single_file is not None]
    for family in readable:
        if header.has(family.single_file.text_key):
            return family
    keys = " or ".join(f"{family.single_file.text_key}* ({family.label})" for family in readable)
    raise UserError(f"model.path {path} holds no text encoder of a known family ({keys}).")


def config_folder(header: Header, path: Path, name: str) -> Path:
    """The folder of configs to read the checkpoint with: model.config's family or folder, else the picked family."""
    family = pick_family(header, path)
    reader = family.flow_file or family.single_file
    name = name or reader.config_name(header)
    shipped = [folder for folder, owner in CONFIG_FOLDERS.items()
               if (owner == family.name if family.flow_file else FAMILIES[owner].flow_file is None)]
    if name in shipped:
        return FAMILIES_DIR / name
    folder = Path(name)
    if not (folder / family.denoiser / "config.json").is_file():
        raise UserError(f"model.config must be one of {', '.join(shipped)} or a folder of diffusers-format configs "
                        f"({family.denoiser}/config.json, ...) for model.path {path}, a {family.label} checkpoint; "
                        f"got '{name}'.")
    return folder


def read_part_config(cls: Any, folder: Path, part: str) -> dict[str, Any]:
    """One diffusers part's config from the folder, or a sentence naming the file."""
    try:
        with quietly():
            return dict(cls.load_config(folder, subfolder=part))
    except (OSError, ValueError) as err:
        raise UserError(f"model.config folder {folder} has no readable {part} config ({first_line(err)}).") from None


def text_config(part: Part, folder: Path) -> Any:
    """A text encoder's config (CLIP's, T5's: the part's config class) naming its model class, or a sentence naming
    the one the folder lacks."""
    try:
        with quietly():
            config = part.config.from_pretrained(folder, subfolder=part.name)
    except (OSError, ValueError) as err:
        raise UserError(f"model.config folder {folder} has no readable {part.name} config ({first_line(err)}).") \
            from None
    config.architectures = [part.loader.__name__]
    return config


def text_configs(folder: Path, family: Family) -> dict[str, CLIPTextConfig]:
    """The config of each of the family's CLIP text encoders."""
    return {part: text_config(family.part(part), folder) for _, part in family.text_pairs}


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
    check_shapes(path, folder, family, converted, configs, "the family or config folder it was trained as")


def check_shapes(path: Path, folder: Path, family: Family, converted: dict[str, dict], configs: dict[str, Any],
                 advice: str) -> None:
    """Each part's converted tensors (in order) against those its config's model needs, by name and shape; the first
    missing or misshapen one is one sentence ending in what model.config should be set to."""
    for part in converted:
        found = {name.removeprefix("text_model."): tuple(t.shape) for name, t in converted[part].items()}
        for name, shape in expected_tensors(family.part(part), folder / part, configs.get(part, {})).items():
            have = found.get(name.removeprefix("text_model."))
            if have != shape:
                state = "lacks it" if have is None else f"has {list(have)}"
                raise UserError(f"model.path {path} does not fit the {part} of {folder}: {name} must have shape "
                                f"{list(shape)} and the checkpoint {state}; set model.config to {advice}.")


def in_channels(header: Header) -> int | None:
    """The UNet's input channels as stored (9 for an inpainting checkpoint)."""
    shape = header.tensors.get(CONV_IN)
    return shape[1] if shape and len(shape) == 4 else None
