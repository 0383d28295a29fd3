"""The model's parts, each loaded on its own (as its family names them) from a diffusers-format folder, a hub id
or one checkpoint file."""

from __future__ import annotations

import pickle
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from diffusers import AutoencoderKL
from transformers import AutoImageProcessor, AutoModelForDepthEstimation

from pipeline.common.errors import UserError
from pipeline.models.families import Family
from pipeline.models.inspect import ModelInfo
from pipeline.models.single_file import load_checkpoint

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class Components:
    """The loaded parts a run needs, by the names its family gives them; each is the plain diffusers or transformers
    object. `tokenizer`, `text_encoder`, `unet` and `vae` name the parts every family so far has."""

    parts: dict[str, Any]
    family: Family
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # model_index.json's pipeline settings (ModelInfo)
    refiner: Optional["Components"] = None  # an SDXL refiner that runs the last steps (run/refiner.py)
    controls: dict[str, Any] = field(default_factory=dict)  # loaded controls by config key (pipeline/controls)

    @property
    def tokenizer(self):
        """The first text pair's tokenizer."""
        return self.parts[self.family.text_pairs[0][0]]

    @property
    def text_encoder(self):
        """The first text pair's text encoder."""
        return self.parts[self.family.text_pairs[0][1]]

    @property
    def text_pairs(self) -> list[tuple[Any, Any]]:
        """Every (tokenizer, text encoder) the family's conditioning reads, in its order."""
        return [(self.parts[tokenizer], self.parts[encoder]) for tokenizer, encoder in self.family.text_pairs]

    @property
    def unet(self):
        """The denoiser (a UNet for every family so far)."""
        return self.parts[self.family.denoiser]

    @unet.setter
    def unet(self, module) -> None:
        self.parts[self.family.denoiser] = module  # performance.compile replaces it with its compiled form

    @property
    def vae(self):
        """The VAE."""
        return self.parts["vae"]


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


def vae_dtype(info: ModelInfo, dtype: torch.dtype) -> torch.dtype:
    """The VAE's dtype: float32 where the model is in float16 and its VAE declares it overflows there (SDXL's
    force_upcast; diffusers' pipelines upcast it to decode); the model's dtype otherwise."""
    return torch.float32 if dtype == torch.float16 and info.vae.get("force_upcast", False) else dtype


def load_vae(info: ModelInfo, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False) -> AutoencoderKL:
    """Only the VAE of a model, placed and in eval mode (the latent tools need no more)."""
    dtype = vae_dtype(info, dtype)
    if info.single_file:
        vae = load_checkpoint(info.path, info.config_dir, info.family, info.unet["in_channels"], dtype, dtype,
                              ("vae",))["vae"]
    else:
        with refused_pickles(info.path, "vae"):
            vae = AutoencoderKL.from_pretrained(info.path, subfolder="vae",
                                                use_safetensors=None if allow_pickle else True, dtype=dtype)
    return vae.to(device).eval().requires_grad_(False)


def load_components(
    info: ModelInfo, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False, extras: tuple[str, ...] = (),
    without: tuple[str, ...] = (),
) -> Components:
    """Load each of the family's parts (and named extras) separately, on the device in the dtype; the optional groups
    named in `without` (model.without) stay unloaded, as the ones a model leaves out."""
    path, family = info.path, info.family
    weights = {"use_safetensors": None if allow_pickle else True, "dtype": dtype}
    if info.single_file:
        parts = load_checkpoint(path, info.config_dir, family, info.unet["in_channels"], dtype, vae_dtype(info, dtype),
                                info.present)
    else:
        parts = {}
        for part in family.parts:
            if part.optional and (part.name not in info.present or part.optional in without):
                continue  # left out of this model (model_index.json names it null), or of this run
            if part.name == "scheduler":
                continue  # built fresh for every run from its config (engine/schedulers.py)
            if part.name == "vae":
                parts["vae"] = load_vae(info, device, dtype, allow_pickle)
            elif not part.weighted:
                parts[part.name] = part.loader.from_pretrained(path, subfolder=part.name)
            else:
                with refused_pickles(path, part.name):
                    parts[part.name] = part.loader.from_pretrained(path, subfolder=part.name, **weights)
    for part in family.weighted:
        if part.name in parts:
            parts[part.name].to(device).eval().requires_grad_(False)
    return Components(
        parts=parts,
        family=family,
        scheduler_config=info.scheduler,
        device=device,
        dtype=dtype,
        name=Path(path).stem if info.single_file else Path(path).name,
        extras={part: load_extra(path, part, weights, device) for part in extras},
        settings=info.settings,
    )
