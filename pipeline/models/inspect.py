"""What a model declares before any weights load: its family, each part's config, its optional extra parts."""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusers.configuration_utils import ConfigMixin
from transformers import AutoConfig

from pipeline.common.errors import UserError
from pipeline.models.families import FAMILIES, KNOWN_PARTS, Family, family_of
from pipeline.models.families.sd import PARTS as SD_PARTS
from pipeline.models.single_file import is_checkpoint_file, read_configs
from pipeline.models.weights_check import check_weights

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
REQUIRED = {"unet": ("sample_size", "in_channels"), "vae": ("block_out_channels",)}  # keys read before loading
# ("unet": the family's denoiser, a UNet or a transformer)


@dataclass
class ModelInfo:
    """What a model folder or hub id declares, read from its config files without loading weights."""

    path: str
    configs: dict[str, dict[str, Any]]  # each weighted part's config and the scheduler's, by part name
    family_name: str
    extras: set[str] = field(default_factory=set)
    config_dir: str = ""  # a single-file checkpoint: the folder its configs and tokenizer are read from
    settings: dict[str, Any] = field(default_factory=dict)  # model_index.json's pipeline settings (SDXL's
    # force_zeros_for_empty_prompt, requires_aesthetics_score)
    present: tuple[str, ...] = ()  # the part folders a diffusers-format model has (its optional parts may be absent);
    # a flow family's checkpoint file: the parts a run loads, from the file or its config folder

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
    def latent_channels(self) -> int:
        """The VAE's latent channels: what a denoiser reads without a task's extra channels."""
        return int(self.vae.get("latent_channels", 4))

    @property
    def size_factor(self) -> int:
        """What image sides must be multiples of: the VAE factor, times the packing of a denoiser reading patches."""
        return self.vae_scale_factor * self.family.packing

    @property
    def size_rule(self) -> str:
        """Why sides must be multiples of size_factor, in a few words."""
        return "the VAE factor" if self.family.packing == 1 else f"the VAE factor x the {self.family.packing}x" \
            f"{self.family.packing} patches the transformer reads"

    @property
    def denoiser_channels(self) -> int:
        """The denoiser's input channels per latent cell (a packing denoiser reads packing^2 cells per token)."""
        return int(self.unet["in_channels"]) // self.family.packing ** 2

    @property
    def default_size(self) -> int:
        """The image side the denoiser was trained for: sample_size (or the family's) x the VAE factor."""
        return int(self.unet.get("sample_size") or self.family.default_sample) * self.vae_scale_factor


def _read_config(cls: type, path: str, subfolder: str) -> dict:
    """One part's config from a folder or the hub cache (a diffusers or transformers class reads it), or a
    UserError naming the part."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if issubclass(cls, ConfigMixin):
                return dict(cls.load_config(path, subfolder=subfolder))
            return AutoConfig.from_pretrained(path, subfolder=subfolder).to_dict()  # CLIP's, T5's: by model_type
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


def read_index(path: str) -> dict[str, Any]:
    """model_index.json of a folder or of a hub id in the cache, or {} where there is none."""
    if Path(path).is_dir():
        file = Path(path) / "model_index.json"
        if not file.is_file():
            return {}
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise UserError(f"model.path {path}: its model_index.json is not readable JSON.") from None
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(path, "model_index.json")).read_text(encoding="utf-8"))
    except Exception:  # not cached or not reachable: the parts' own configs then say what is missing
        return {}


def present_parts(path: str, index: dict[str, Any]) -> list[str]:
    """The part names a model has: those model_index.json lists with a class, else the known part folders there
    (else Stable Diffusion's, for a hub id without an index)."""
    if index:
        return [name for name, value in index.items()
                if name in KNOWN_PARTS and isinstance(value, list) and value and value[0] is not None]
    if Path(path).is_dir():
        return [name for name in KNOWN_PARTS if (Path(path) / name).is_dir()]
    return [part.name for part in SD_PARTS]


def settings_of(index: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's own settings in model_index.json (not its parts, not the _class_name/_diffusers_version)."""
    return {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}


def pick_family(path: str, configs: dict[str, dict], index: dict[str, Any]) -> Family:
    """The family the parts' configs show, or one sentence naming why none fits or why model_index.json's
    pipeline class disagrees."""
    try:
        family = family_of(configs)
    except ValueError:
        labels = ", ".join(f.label for f in FAMILIES.values())
        raise UserError(f"model.path {path} is not a model of a family the pipeline knows ({labels}): its parts "
                        f"are {', '.join(sorted(configs))} and its UNet's addition_embed_type is "
                        f"{configs.get('unet', {}).get('addition_embed_type')}.") from None
    named = index.get("_class_name", "")
    other = next((f for f in FAMILIES.values() if named in f.pipelines and f.pipelines != family.pipelines), None)
    if other is not None:
        raise UserError(f"model.path {path}: its model_index.json names {named} (a {other.label} pipeline), but its "
                        f"parts are those of a {family.label} model.")
    return family


def inspect_model(path: str, allow_pickle: bool = False, config: str = "", without: tuple[str, ...] = ()
                  ) -> ModelInfo:
    """Check that a folder, hub id or checkpoint file holds a model of a known family and read its configs, loading
    no weights; `config` (model.config) names the configs a checkpoint file is read with, `without`
    (model.without) the optional parts a checkpoint file's run leaves out."""
    if is_checkpoint_file(path):
        folder, configs, present = read_configs(path, allow_pickle, config, without)
        index = read_index(str(folder))
        return ModelInfo(path=path, configs=configs, family_name=pick_family(path, configs, index).name,
                         config_dir=str(folder), settings=settings_of(index), present=present)
    if config:
        raise UserError(f"model.config applies to a single-file checkpoint; model.path {path} is not one "
                        "(a folder or hub id brings its own configs).")
    root = Path(path)
    local = root.is_dir() or not HUB_ID.match(path) or path.startswith(".")
    if local and not root.is_dir():
        raise UserError(f"model.path folder {root} does not exist.")
    index = read_index(path)
    names = present_parts(path, index)
    if local:
        _check_folder(root, tuple(names), tuple(n for n in names if KNOWN_PARTS[n].weighted), allow_pickle)
    configs = _part_configs(path, [KNOWN_PARTS[name] for name in names])
    family = pick_family(path, configs, index)
    missing = [name for name in family.required if name not in names]
    if missing:
        raise UserError(f"model.path {path} is missing its '{missing[0]}' component, which every {family.label} "
                        "model has.")
    info = ModelInfo(path=path, configs=configs, family_name=family.name, settings=settings_of(index),
                     present=tuple(names))
    for part, keys in REQUIRED.items():
        part = family.denoiser if part == "unet" else part
        for key in keys:
            if configs[part].get(key) is None and not (key == "sample_size" and family.default_sample):
                raise UserError(
                    f"model.path {path}: {part}/config.json has no '{key}', which every {part} config must give."
                )
    if root.is_dir():
        check_weights(root, {part.name: configs[part.name] for part in family.weighted if part.name in configs},
                      allow_pickle, family)
        info.extras = {p.name for p in root.iterdir() if p.is_dir()} - set(family.part_names)
    return info
