"""T2I-Adapter (Mou et al., 2023): a small network that reads a control image once and adds its features inside the
UNet's down blocks at every step, run as diffusers' StableDiffusionAdapterPipeline and
StableDiffusionXLAdapterPipeline run it (features scaled by the weight, summed over adapters as MultiAdapter sums
them, repeated for every latent of the batch, and added for the first adapter_conditioning_factor share of the
steps)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import T2IAdapter
from omegaconf import DictConfig

from pipeline.common.errors import UserError
from pipeline.common.inputs import fit
from pipeline.controls.preprocess import check_aspect, control_map
from pipeline.engine.conditioning import Tensors
from pipeline.engine.loop import LoopSetup
from pipeline.engine.model_call import ModelCall
from pipeline.models.components import Components
from pipeline.models.inspect import ModelInfo

FAMILIES = ("sd1", "sdxl")  # diffusers' adapter pipelines: StableDiffusionAdapterPipeline and ...XLAdapterPipeline
RESIDUALS = "down_intrablock_additional_residuals"
PREPROCESSORS = ("none", "canny")  # the maps of controls/preprocess.py a T2I-Adapter reads
Shape = tuple[int, int]  # (channels, pixels per feature cell along a side)


@dataclass
class Adapters:
    """The loaded adapters, and their summed features by what made them (images, preprocessors, weights, size):
    a job's lines that share the load may differ in those."""

    models: list[T2IAdapter]
    features: dict[tuple, list[torch.Tensor]] = field(default_factory=dict)


def feature_shapes(config: dict[str, Any]) -> list[Shape]:
    """The (channels, scale) of each feature an adapter gives, from its config (diffusers' FullAdapter,
    FullAdapterXL and LightAdapter blocks)."""
    channels, factor, kind = list(config["channels"]), config["downscale_factor"], config["adapter_type"]
    if kind == "full_adapter_xl":
        return [(c, factor if i < 2 else 2 * factor) for i, c in enumerate(channels)]
    shapes = [(c, factor * 2 ** i) for i, c in enumerate(channels)]
    return shapes + [(channels[-1], factor * 2 ** len(channels))] if kind == "light_adapter" else shapes


def unet_shapes(info: ModelInfo) -> list[Shape]:
    """The (channels, scale) each UNet down block adds a feature at: a cross-attention block before its downsampler,
    a plain block after it (UNet2DConditionModel.forward)."""
    types, channels = info.unet["down_block_types"], info.unet["block_out_channels"]
    shapes = []
    for i, (kind, width) in enumerate(zip(types, channels)):
        before = "CrossAttn" in kind or i == len(types) - 1
        shapes.append((width, info.vae_scale_factor * 2 ** (i if before else i + 1)))
    return shapes


def read_config(path: str, key: str) -> dict[str, Any]:
    """The adapter's config.json from a folder or the hub cache, without its weights."""
    if not path:
        raise UserError(f"{key}.path must name a T2I-Adapter folder or hub id; it is not set.")
    if Path(path).is_file():
        raise UserError(f"{key}.path {path} is a single file; T2I-Adapters are read from a diffusers folder or hub id "
                        "(config.json beside the weights).")
    try:
        config = T2IAdapter.load_config(path)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0].rstrip(".")
        raise UserError(f"{key}.path {path} is not a readable T2I-Adapter folder or hub id ({reason}).") from None
    if config.get("_class_name") != "T2IAdapter":
        raise UserError(f"{key}.path {path} holds a {config.get('_class_name')}, not a T2IAdapter.")
    return config


def shown(shapes: list[Shape]) -> str:
    """Feature shapes for a sentence: '320 channels at 1/8, ...'."""
    return ", ".join(f"{c} channels at 1/{s}" for c, s in shapes)


def check_fit(config: dict[str, Any], info: ModelInfo, key: str, path: str) -> list[Shape]:
    """The adapter's features land on the UNet's blocks with their channels and scale; returns the features used."""
    given, taken = feature_shapes(config), unet_shapes(info)
    used = given[: len(taken)]
    if used != taken[: len(used)]:
        raise UserError(f"{key}.path {path} is a T2I-Adapter for another model: its features are {shown(used)} of "
                        f"the image side, where model.path {info.path}'s UNet takes {shown(taken)}.")
    return used


def check_entry(cfg: DictConfig, info: ModelInfo, n: int, run: tuple[int, int]) -> None:
    """One adapters entry: weight, preprocessor, config against the UNet, image and its aspect, the run's size."""
    entry, key = cfg.adapters[n], f"adapters[{n}]"
    if not 0 <= entry.weight <= 2:
        raise UserError(f"{key}.weight must be a number in [0, 2]; got {entry.weight}.")
    if entry.preprocessor not in PREPROCESSORS:
        raise UserError(f"{key}.preprocessor must be one of {', '.join(PREPROCESSORS)}; got '{entry.preprocessor}'.")
    used = check_fit(read_config(entry.path, key), info, key, entry.path)
    image = control_map(entry.image, "none", key)
    check_aspect(image.size, run, key, entry.image)
    step = max(scale for _, scale in used)
    if run[0] % step or run[1] % step:
        raise UserError(f"width and height must be multiples of {step} for {key} (its features are added at 1/{step} "
                        f"of the image side); the run is {run[0]}x{run[1]}.")


def check(cfg: DictConfig, info: ModelInfo, size: tuple[int, int]) -> None:
    """The family, adapter_conditioning_factor and every entry for a run of (width, height) `size`; the first
    mistake raises."""
    if info.family_name not in FAMILIES:
        raise UserError(f"adapters (T2I-Adapters) work with Stable Diffusion 1.x and XL models, as diffusers' "
                        f"StableDiffusionAdapterPipeline and StableDiffusionXLAdapterPipeline; model.path "
                        f"{info.path} is a {info.family.label} model, for which diffusers has no adapter pipeline.")
    if not 0 <= cfg.adapter_conditioning_factor <= 1:
        raise UserError(f"adapter_conditioning_factor must be a share of the steps in [0, 1]; got "
                        f"{cfg.adapter_conditioning_factor}.")
    for n in range(len(cfg.adapters)):
        check_entry(cfg, info, n, size)


def load(cfg: DictConfig, info: ModelInfo, components: Components) -> Adapters:
    """The entries' adapters on the components' device and dtype, in evaluation mode."""
    models = []
    for entry in cfg.adapters:
        model = T2IAdapter.from_pretrained(entry.path, dtype=components.dtype,
                                           use_safetensors=None if cfg.model.allow_pickle else True)
        models.append(model.to(components.device).eval().requires_grad_(False))
    return Adapters(models)


def control_pixels(entry: Any, n: int, model: T2IAdapter, size: tuple[int, int]) -> torch.Tensor:
    """One entry's control map (grayscale for a 1-channel adapter) at the run's size, Lanczos-resized as diffusers'
    _preprocess_adapter_image, as (1, C, H, W) in [0, 1]."""
    image = control_map(entry.image, entry.preprocessor, f"adapters[{n}]")
    image = image.convert("L") if model.config.in_channels == 1 else image
    array = np.asarray(fit(image, *size), dtype=np.float32) / 255.0
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.transpose(2, 0, 1)[None].copy())


@torch.no_grad()
def features(adapters: Adapters, ctx: Any) -> list[torch.Tensor]:
    """Every adapter's features scaled by its weight and summed scale by scale, made once per set of inputs."""
    entries, size = list(ctx.cfg.adapters), (ctx.width, ctx.height)
    key = (tuple((e.image, e.preprocessor, float(e.weight)) for e in entries), size)
    if key not in adapters.features:
        total: list[torch.Tensor] = []
        for n, (entry, model) in enumerate(zip(entries, adapters.models)):
            given = model(control_pixels(entry, n, model, size).to(device=ctx.device, dtype=model.dtype))
            weight = float(entry.weight)
            total = [f * weight for f in given] if not total else [a + f * weight for a, f in zip(total, given)]
        adapters.features = {key: total}  # the latest only: a job's next line may change an input
    return adapters.features[key]


def wrap(call: ModelCall, loaded: Adapters, ctx: Any, setup: LoopSetup) -> ModelCall:
    """The model call with the adapters' features for the first adapter_conditioning_factor share of the steps
    (StableDiffusionXLAdapterPipeline's cut); the loop calls the model once per step, so the k-th call is step k.
    The UNet pops the list it is given, so every call gets a fresh one."""
    summed = features(loaded, ctx)
    steps = math.floor(len(setup.timesteps) * ctx.cfg.adapter_conditioning_factor)
    calls = [0]

    def adapted(x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The inner call, with the features repeated for every latent of the batch while the steps last."""
        i, calls[0] = calls[0], calls[0] + 1
        if i >= steps:
            return call(x, t, conditioning)
        return call(x, t, {**conditioning, RESIDUALS: [f.repeat(len(x), 1, 1, 1) for f in summed]})

    return adapted


def fields(cfg: DictConfig) -> dict[str, str]:
    """One quoted unit per adapter in sd-webui-controlnet's form, and the factor when it cuts the steps."""
    result = {}
    for n, entry in enumerate(cfg.adapters):
        parts = {"Module": entry.preprocessor, "Model": Path(entry.path).name, "Weight": entry.weight}
        result[f"T2I-Adapter {n}"] = '"' + ", ".join(f"{k}: {v}" for k, v in parts.items()) + '"'
    if cfg.adapter_conditioning_factor < 1:
        result["T2I-Adapter factor"] = cfg.adapter_conditioning_factor
    return result
