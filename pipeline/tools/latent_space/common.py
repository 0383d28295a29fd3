"""What the latent tools share: input checks before any weights load, the VAE, encoding, the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pipeline.models.components import resolve_device
from pipeline.models.inspect import ModelInfo, inspect_model
from pipeline.models.components import load_vae as load_model_vae
from pipeline.run.config import to_yaml
from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image
from pipeline.engine.latents import decode, encode, from_pil, generators_for, to_pil
from pipeline.common.limits import MAX_SIDE, check_sheet
from pipeline.run.outputs import check_writable
from pipeline.models.precision import DtypeChoice, announce, check_dtype_name, choose_dtype
from pipeline.tools.run_folder import new_run_folder, save_text
from pipeline.tools.latent_space.schema import check_section


@dataclass
class ImagePlan:
    """A checked image command: the model's declared configs, placement, output folder and input images."""

    info: ModelInfo
    device: torch.device
    precision: DtypeChoice
    output_dir: Path
    images: list[Image.Image]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the VAE is loaded in (model.dtype, with `auto` decided)."""
        return self.precision.dtype


@dataclass
class ToolResult:
    """What a command made: its run folder, the files in it, and the numbers it measured."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)


def check_images(cfg: DictConfig, keys: list[str]) -> ImagePlan:
    """Check model, placement, output folder and the images named by `keys`, all before any weights load."""
    device = resolve_device(cfg.model.device)
    check_dtype_name(cfg.model.dtype)
    info = inspect_model(cfg.model.path, cfg.model.allow_pickle, cfg.model.config, tuple(cfg.model.without))
    precision = choose_dtype(cfg.model.dtype, device, info.unet, info.vae)
    factor = info.vae_scale_factor
    images = [read_image(OmegaConf.select(cfg, key), key) for key in keys]
    for key, image in zip(keys, images):
        if max(image.size) > MAX_SIDE:
            raise UserError(f"{key} is {image.width}x{image.height}; the latent tools take images of at most "
                            f"{MAX_SIDE} pixels a side.")
        if image.width % factor or image.height % factor:
            raise UserError(f"{key} file {OmegaConf.select(cfg, key)} is {image.width}x{image.height}; its sides must "
                            f"be multiples of {factor} (the VAE factor), so crop or resize it.")
        if image.size != images[0].size:
            first = images[0]
            raise UserError(f"{key} is {image.width}x{image.height} but {keys[0]} is {first.width}x{first.height}; "
                            "interpolated images must have one size.")
    return ImagePlan(info, device, precision, check_writable(cfg.output_dir), images)


def load_vae(plan: ImagePlan, allow_pickle: bool) -> AutoencoderKL:
    """Only the VAE of the checked model."""
    announce(plan.precision)
    return load_model_vae(plan.info, plan.device, plan.dtype, allow_pickle)


def encode_image(vae: AutoencoderKL, image: Image.Image, cfg: DictConfig) -> torch.Tensor:
    """An image's scaled latent (1, C, h, w): the distribution's mean, or a sample with `seed` if latents.sample."""
    pixels = from_pil(image).to(device=vae.device, dtype=vae.dtype)
    return encode(vae, pixels, generators_for([cfg.seed]) if cfg.latents.sample else None)


def decode_image(vae: AutoencoderKL, latent: torch.Tensor) -> Image.Image:
    """One scaled latent back to a PIL image."""
    return to_pil(decode(vae, latent.to(device=vae.device, dtype=vae.dtype)))[0]


def start_run(cfg: DictConfig, output_dir: Path, command: str) -> tuple[Path, dict[str, Path]]:
    """A new numbered run folder for the command, with the resolved config saved in it."""
    folder = new_run_folder(output_dir, command)
    return folder, {"config": save_text(to_yaml(cfg), folder, "config.yaml")}


def summary(result: ToolResult) -> list[str]:
    """The measured numbers, then the files written, then the run folder, for the command line."""
    lines = [f"{name}: {value:.4g}" for name, value in result.numbers.items()]
    lines += [f"{name}: {path}" for name, path in result.files.items()]
    return lines + [str(result.folder)]


def encoded_config_image(
    cfg: DictConfig, sheet: tuple[str, int] = ("the picture", 3)
) -> tuple[ImagePlan, AutoencoderKL, Image.Image, torch.Tensor]:
    """Check the config (and that the command's picture of `sheet` = (what, tiles) tiles stays within bounds),
    load the VAE, and encode `image`: the start of roundtrip, channels and noise."""
    check_section(cfg)
    plan = check_images(cfg, ["image"])
    check_sheet(sheet[0], sheet[1], *plan.images[0].size)
    vae = load_vae(plan, cfg.model.allow_pickle)
    [image] = plan.images
    return plan, vae, image, encode_image(vae, image, cfg)
