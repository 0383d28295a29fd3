"""A ControlNet entry's checks before any weights load: numbers, preprocessor, its config against the model's UNet,
and its control image against the run's aspect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import ControlNetModel
from omegaconf import DictConfig

from pipeline.common.errors import UserError
from pipeline.controls.controlnet_file import check_tensors, config_source, read_tensors
from pipeline.controls.depth_map import estimator_source
from pipeline.controls.preprocess import check_aspect, check_preprocessor, control_map
from pipeline.models.inspect import ModelInfo

FIT_KEYS = ("cross_attention_dim", "addition_embed_type", "block_out_channels", "layers_per_block",
            "down_block_types")  # what a ControlNet shares with the UNet it feeds (its residuals' shapes)


def check_numbers(entry: Any, key: str) -> None:
    """weight in [0, 2] (A1111's Control Weight slider) and 0 <= start < end <= 1."""
    if not 0 <= entry.weight <= 2:
        raise UserError(f"{key}.weight must be a number in [0, 2]; got {entry.weight}.")
    if not (0 <= entry.start < entry.end <= 1):
        raise UserError(f"{key}.start and {key}.end must satisfy 0 <= start < end <= 1; got start {entry.start}, "
                        f"end {entry.end}.")


def read_config(entry: Any, key: str) -> dict[str, Any]:
    """The ControlNet's config.json without its weights: from its folder or hub id, or for a single .safetensors
    checkpoint from `config` or the shipped config of the layout its tensors show (controls/controlnet_file.py),
    its tensors checked against it."""
    if not entry.path:
        raise UserError(f"{key}.path must name a ControlNet folder, hub id or .safetensors file; it is not set.")
    if not Path(entry.path).is_file():
        return folder_config(entry.path, f"{key}.path")
    if Path(entry.path).suffix != ".safetensors":
        raise UserError(f"{key}.path {entry.path} is a {Path(entry.path).suffix or 'suffix-less'} file; a single-file "
                        "ControlNet is read from .safetensors only (no pickle).")
    source = config_source(entry, key)
    config = folder_config(source, f"{key}.config" if entry.config else f"the shipped config {source}")
    check_tensors(read_tensors(entry.path, f"{key}.path"), config, key, entry.path, source)
    return config


def folder_config(path: str, key: str) -> dict[str, Any]:
    """A ControlNetModel's config.json from a folder or the hub cache, or one sentence why not."""
    folder = Path(path)
    if folder.is_dir() and not (folder / "config.json").is_file():
        what = "a model folder (model_index.json)" if (folder / "model_index.json").is_file() else "a folder"
        raise UserError(f"{key} {path} is {what} without a ControlNet's config.json.")
    if not folder.exists() and (folder.is_absolute() or path.startswith(".") or path.count("/") != 1):
        raise UserError(f"{key} {path} does not exist (a ControlNet folder or an owner/name hub id is needed).")
    if folder.is_file():
        raise UserError(f"{key} {path} is a file; a folder or hub id holding config.json is needed.")
    try:
        config = ControlNetModel.load_config(path)
    except (OSError, ValueError):
        raise UserError(f"{key} {path} is no local folder and no ControlNet the hub (or its cache, offline) "
                        "holds.") from None
    if config.get("_class_name") != "ControlNetModel":
        raise UserError(f"{key} {path} holds a {config.get('_class_name')}, not a ControlNetModel.")
    return config


def described(config: dict[str, Any], label: str) -> str:
    """A UNet's or ControlNet's family and the sizes that must agree, for one sentence."""
    return (f"{label} (cross_attention_dim {config.get('cross_attention_dim')}, block_out_channels "
            f"{list(config.get('block_out_channels', []))})")


def family_of(config: dict[str, Any]) -> str:
    """The family a ControlNet's config was made for, guessed from what each family's UNet has."""
    if config.get("addition_embed_type") == "text_time":
        return "Stable Diffusion XL"
    if config.get("cross_attention_dim") == 1024 or config.get("use_linear_projection"):
        return "Stable Diffusion 2.x"
    return "Stable Diffusion 1.x"


def check_fit(config: dict[str, Any], info: ModelInfo, key: str, path: str, model_path: str) -> None:
    """The ControlNet's shared keys equal the UNet's, else one sentence naming both."""
    unet = info.unet
    if any(_plain(config.get(name)) != _plain(unet.get(name)) for name in FIT_KEYS):
        raise UserError(f"{key}.path {path} is a ControlNet for {described(config, family_of(config))}; model.path "
                        f"{model_path} is {described(unet, info.family.label)}.")


def _plain(value: Any) -> Any:
    """Lists and tuples compared alike (JSON reads tuples back as lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def picture_of(entry: Any, cfg: DictConfig) -> str:
    """The picture an entry reads: its image, or for the inpaint preprocessor the run's image when it names none."""
    return entry.image or cfg.image if entry.preprocessor == "inpaint" else entry.image


def check_entries(cfg: DictConfig, info: ModelInfo, run: tuple[int, int]) -> None:
    """Every controlnets entry, in order, for a run of (width, height) `run`; the first mistake raises."""
    for n, entry in enumerate(cfg.controlnets):
        key = f"controlnets[{n}]"
        check_numbers(entry, key)
        check_preprocessor(entry.preprocessor, key, cfg.task)
        estimator_source(entry, key, info, cfg.model.allow_pickle)
        check_fit(read_config(entry, key), info, key, entry.path, cfg.model.path)
        path = picture_of(entry, cfg)
        image = control_map(path, "none", key)
        check_aspect(image.size, run, key, path)
