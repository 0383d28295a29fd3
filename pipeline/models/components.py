"""The model's parts, each loaded on its own from a diffusers-format folder, a hub id or one checkpoint file."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin
from transformers import (AutoImageProcessor, AutoModelForDepthEstimation, CLIPTextConfig, CLIPTextModel,
                          CLIPTokenizer)

from pipeline.common.errors import UserError
from pipeline.models.single_file import is_checkpoint_file, load_checkpoint, read_configs
from pipeline.models.weights_check import check_weights

DEVICES = ("auto", "cpu", "cuda", "mps")
WEIGHTED = ("text_encoder", "unet", "vae")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
REQUIRED = {"unet": ("sample_size", "in_channels"), "vae": ("block_out_channels",)}  # keys read before loading


@dataclass
class ModelInfo:
    """What a model folder or hub id declares, read from its config files without loading weights."""

    path: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    scheduler: dict[str, Any]
    extras: set[str] = field(default_factory=set)
    text_encoder: dict[str, Any] = field(default_factory=dict)
    config_dir: str = ""  # a single-file checkpoint: the folder its configs and tokenizer are read from

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


@dataclass
class Components:
    """The loaded parts a run needs; each is the plain diffusers or transformers object."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; other names must be available on this machine."""
    if name not in DEVICES:
        raise UserError(f"model.device must be one of {', '.join(DEVICES)}; got '{name}'.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("model.device is 'cuda' but no CUDA device is available on this machine.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("model.device is 'mps' but no MPS device is available on this machine.")
    return torch.device(name)


def _read_config(cls: type[ConfigMixin], path: str, subfolder: str) -> dict:
    """One component's config from a folder or the hub cache, or a UserError naming the component."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(cls.load_config(path, subfolder=subfolder))
    except (OSError, ValueError) as err:
        if Path(path).is_dir():
            raise UserError(f"model.path {path} has no readable {subfolder} config ({type(err).__name__}).") from None
        raise UserError(
            f"model.path {path} is not a folder here, and its {subfolder} config is neither in the hub cache "
            f"nor reachable{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}."
        ) from None


def _read_text_config(path: str) -> dict:
    """The text encoder's config (its layer count bounds clip skip), or a UserError naming it."""
    try:
        return CLIPTextConfig.from_pretrained(path, subfolder="text_encoder").to_dict()
    except (OSError, ValueError) as err:
        raise UserError(f"model.path {path} has no readable text_encoder config ({type(err).__name__}).") from None


def _check_folder(root: Path, allow_pickle: bool) -> None:
    """A local model folder must hold every component, with safetensors weights unless pickle is allowed."""
    if not root.is_dir():
        raise UserError(f"model.path folder {root} does not exist.")
    for part in ("tokenizer", "text_encoder", "unet", "vae", "scheduler"):
        if not (root / part).is_dir():
            raise UserError(f"model.path folder {root} is missing its '{part}' component folder.")
    for part in WEIGHTED:
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


def inspect_model(path: str, allow_pickle: bool = False, config: str = "") -> ModelInfo:
    """Check that a folder, hub id or checkpoint file holds a Stable Diffusion model and read its configs, loading
    no weights; `config` (model.config) names the configs a checkpoint file is read with."""
    if is_checkpoint_file(path):
        folder, configs = read_configs(path, allow_pickle, config)
        return ModelInfo(path=path, config_dir=str(folder), **configs)
    if config:
        raise UserError(f"model.config applies to a single-file checkpoint; model.path {path} is not one "
                        "(a folder or hub id brings its own configs).")
    root = Path(path)
    if root.is_dir() or not HUB_ID.match(path) or path.startswith("."):
        _check_folder(root, allow_pickle)
    info = ModelInfo(
        path=path,
        unet=_read_config(UNet2DConditionModel, path, "unet"),
        vae=_read_config(AutoencoderKL, path, "vae"),
        scheduler=_read_config(PNDMScheduler, path, "scheduler"),
        text_encoder=_read_text_config(path),
    )
    for part, keys in REQUIRED.items():
        for key in keys:
            if getattr(info, part).get(key) is None:
                raise UserError(
                    f"model.path {path}: {part}/config.json has no '{key}', which every {part} config must give."
                )
    if root.is_dir():
        check_weights(root, {"text_encoder": {}, "unet": info.unet, "vae": info.vae}, allow_pickle)
        info.extras = {p.name for p in root.iterdir() if p.is_dir()} - {"tokenizer", "text_encoder", "unet", "vae", "scheduler"}
    return info


def load_extra(path: str, part: str, weights: dict[str, Any], device: torch.device):
    """An optional part named in a variant's extra_parts: depth_estimator or feature_extractor."""
    if part == "feature_extractor":
        return AutoImageProcessor.from_pretrained(path, subfolder=part)
    if part == "depth_estimator":
        return AutoModelForDepthEstimation.from_pretrained(path, subfolder=part, **weights).to(device).eval()
    raise ValueError(f"unknown optional model part {part}")


@contextmanager
def refused_pickles(path: str, part: str) -> Iterator[None]:
    """A pickle weight file that safe loading refuses (torch.load weights_only=True: code or foreign objects in it,
    never run) becomes one sentence naming the component, instead of torch's page-long message."""
    try:
        yield
    except (pickle.UnpicklingError, OSError) as err:
        causes, cause = [], err
        while cause is not None:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        if not any(isinstance(c, pickle.UnpicklingError) for c in causes):
            raise
        raise UserError(f"model.path component {Path(path) / part} holds a pickle weight file that safe loading "
                        "(torch.load with weights_only=True) refuses: it holds code or objects besides tensors, "
                        "and none of it was run.") from None


def load_vae(info: ModelInfo, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False) -> AutoencoderKL:
    """Only the VAE of a model, placed and in eval mode (the latent tools need no more)."""
    if info.single_file:
        vae = load_checkpoint(info.path, info.config_dir, info.unet["in_channels"], dtype)[3]
    else:
        with refused_pickles(info.path, "vae"):
            vae = AutoencoderKL.from_pretrained(info.path, subfolder="vae",
                                                use_safetensors=None if allow_pickle else True, dtype=dtype)
    return vae.to(device).eval().requires_grad_(False)


def load_components(
    info: ModelInfo, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False, extras: tuple[str, ...] = ()
) -> Components:
    """Load tokenizer, text encoder, UNet, VAE (and named extras) separately, on the device in the dtype."""
    path = info.path
    weights = {"use_safetensors": None if allow_pickle else True, "dtype": dtype}
    if info.single_file:
        tokenizer, text_encoder, unet, vae = load_checkpoint(path, info.config_dir, info.unet["in_channels"], dtype)
    else:
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        with refused_pickles(path, "text_encoder"):
            text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **weights)
        with refused_pickles(path, "unet"):
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **weights)
        vae = load_vae(info, device, dtype, allow_pickle)
    for module in (text_encoder, unet, vae):
        module.to(device).eval().requires_grad_(False)
    return Components(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        vae=vae,
        scheduler_config=info.scheduler,
        device=device,
        dtype=dtype,
        name=Path(path).stem if info.single_file else Path(path).name,
        extras={part: load_extra(path, part, weights, device) for part in extras},
    )
