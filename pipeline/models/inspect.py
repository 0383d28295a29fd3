"""What a model declares before any weights load: its family, each part's config, its optional extra parts."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusers.configuration_utils import ConfigMixin

from pipeline.common.errors import UserError
from pipeline.models.families import FAMILIES, Family, family_of
from pipeline.models.families.sd import PARTS as SD_PARTS
from pipeline.models.single_file import is_checkpoint_file, read_configs
from pipeline.models.weights_check import check_weights

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
REQUIRED = {"unet": ("sample_size", "in_channels"), "vae": ("block_out_channels",)}  # keys read before loading


@dataclass
class ModelInfo:
    """What a model folder or hub id declares, read from its config files without loading weights."""

    path: str
    configs: dict[str, dict[str, Any]]  # each weighted part's config and the scheduler's, by part name
    family_name: str
    extras: set[str] = field(default_factory=set)
    config_dir: str = ""  # a single-file checkpoint: the folder its configs and tokenizer are read from

    @property
    def family(self) -> Family:
        """The model family: its parts, its conditioning and its model call."""
        return FAMILIES[self.family_name]

    @property
    def unet(self) -> dict[str, Any]:
        """The denoiser's config (a UNet's for every family so far)."""
        return self.configs[self.family.denoiser]

    @property
    def vae(self) -> dict[str, Any]:
        """The VAE's config."""
        return self.configs["vae"]

    @property
    def scheduler(self) -> dict[str, Any]:
        """The scheduler's config."""
        return self.configs["scheduler"]

    @property
    def text_encoder(self) -> dict[str, Any]:
        """The first text encoder's config (its layer count bounds clip skip)."""
        return self.configs[self.family.text_pairs[0][1]]

    @property
    def single_file(self) -> bool:
        """Whether the weights are one checkpoint file in the original layout."""
        return bool(self.config_dir)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side, as diffusers derives it from the VAE's blocks."""
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def default_size(self) -> int:
        """The image side the UNet was trained for: sample_size x the VAE factor."""
        return int(self.unet["sample_size"]) * self.vae_scale_factor


def _read_config(cls: type, path: str, subfolder: str) -> dict:
    """One part's config from a folder or the hub cache (a diffusers or transformers class reads it), or a
    UserError naming the part."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if issubclass(cls, ConfigMixin):
                return dict(cls.load_config(path, subfolder=subfolder))
            return cls.from_pretrained(path, subfolder=subfolder).to_dict()
    except (OSError, ValueError) as err:
        if Path(path).is_dir():
            raise UserError(f"model.path {path} has no readable {subfolder} config ({type(err).__name__}).") from None
        raise UserError(
            f"model.path {path} is not a folder here, and its {subfolder} config is neither in the hub cache "
            f"nor reachable{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}."
        ) from None


def _check_folder(root: Path, names: tuple[str, ...], weighted: tuple[str, ...], allow_pickle: bool) -> None:
    """A local model folder must hold every part, with safetensors weights unless pickle is allowed."""
    if not root.is_dir():
        raise UserError(f"model.path folder {root} does not exist.")
    for part in names:
        if not (root / part).is_dir():
            raise UserError(f"model.path folder {root} is missing its '{part}' component folder.")
    for part in weighted:
        folder = root / part
        if any(folder.glob("*.safetensors")):
            continue
        pickles = [p for p in folder.iterdir() if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
        if not pickles:
            raise UserError(f"model.path component {folder} has no weight files.")
        if not allow_pickle:
            raise UserError(
                f"model.path component {folder} has only pickle weights; set model.allow_pickle=true to load them."
            )


def _part_configs(path: str, parts) -> dict[str, dict]:
    """The config of every weighted part and the scheduler, read with the class each part names."""
    return {part.name: _read_config(part.config or part.loader, path, part.name)
            for part in parts if part.weighted or part.name == "scheduler"}


def inspect_model(path: str, allow_pickle: bool = False, config: str = "") -> ModelInfo:
    """Check that a folder, hub id or checkpoint file holds a model of a known family and read its configs, loading
    no weights; `config` (model.config) names the configs a checkpoint file is read with."""
    if is_checkpoint_file(path):
        folder, configs = read_configs(path, allow_pickle, config)
        return ModelInfo(path=path, configs=configs, family_name=family_of(configs).name, config_dir=str(folder))
    if config:
        raise UserError(f"model.config applies to a single-file checkpoint; model.path {path} is not one "
                        "(a folder or hub id brings its own configs).")
    root = Path(path)
    names = tuple(part.name for part in SD_PARTS)  # every family so far has Stable Diffusion's part folders
    if root.is_dir() or not HUB_ID.match(path) or path.startswith("."):
        _check_folder(root, names, tuple(p.name for p in SD_PARTS if p.weighted), allow_pickle)
    configs = _part_configs(path, SD_PARTS)
    family = family_of(configs)
    info = ModelInfo(path=path, configs=configs, family_name=family.name)
    for part, keys in REQUIRED.items():
        for key in keys:
            if configs[part].get(key) is None:
                raise UserError(
                    f"model.path {path}: {part}/config.json has no '{key}', which every {part} config must give."
                )
    if root.is_dir():
        check_weights(root, {part.name: configs[part.name] for part in family.weighted}, allow_pickle, family)
        info.extras = {p.name for p in root.iterdir() if p.is_dir()} - set(family.part_names)
    return info
