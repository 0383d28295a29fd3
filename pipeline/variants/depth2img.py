"""depth2img: img2img with a 5-channel UNet whose extra channel is the depth map, normalised to [-1, 1]
(diffusers' StableDiffusionDepth2ImgPipeline). The depth comes from `depth_map` or the model's estimator."""

from __future__ import annotations

import logging

import torch

from pipeline.models.depth_estimator import predict_depth
from pipeline.models.inspect import ModelInfo
from pipeline.common.errors import UserError
from pipeline.common.inputs import fit, read_grayscale, read_image
from pipeline.engine.loop import LoopSetup
from pipeline.variants.base import (
    RunContext,
    check_strength,
    cut_timesteps,
    image_size,
    input_size,
    require_unet_channels,
)
from pipeline.variants.img2img import load_image, noised_latents

ESTIMATOR = ("depth_estimator", "feature_extractor")
FLAT = 1e-5  # a map whose values differ by less than this share of their size is flat (bicubic rounding is ~1e-7)
log = logging.getLogger("pipeline")


def check(cfg, info: ModelInfo) -> tuple[int, int]:
    """A 5-channel UNet, a readable image, and a depth map file or an estimator in the model folder."""
    if info.family_name.startswith("sdxl"):
        raise UserError(f"depth2img needs Stable Diffusion 2's depth model (a UNet that takes the depth map as a 5th "
                        f"input channel), which SDXL has no counterpart of in diffusers; model.path {info.path} is a "
                        f"{info.family.label} model.")
    require_unet_channels(info, (5,), cfg.task)
    check_strength(cfg)
    size = image_size(cfg, info)
    if cfg.depth_map is not None:
        input_size(cfg, "depth_map")
    elif not set(ESTIMATOR) <= info.extras:
        raise UserError(
            f"depth2img needs depth_map set, or a model folder with depth_estimator and feature_extractor "
            f"(model.path {info.path} has neither)."
        )
    return size


def extra_parts(cfg) -> tuple[str, ...]:
    """The optional model parts this run loads: the estimator only when no depth map is given."""
    return () if cfg.depth_map is not None else ESTIMATOR


def estimate_depth(ctx: RunContext) -> torch.Tensor:
    """(1, H', W') relative depth from the model's DPT estimator, larger = nearer."""
    image = fit(read_image(ctx.cfg.image, "image"), ctx.width, ctx.height)
    return predict_depth(ctx.components.extras["depth_estimator"], ctx.components.extras["feature_extractor"], image)


def given_depth(ctx: RunContext) -> torch.Tensor:
    """(1, H, W) depth from the grayscale `depth_map` image, brighter = nearer."""
    return torch.from_numpy(read_grayscale(ctx.cfg.depth_map, "depth_map"))[None].to(ctx.device)


def normalised_depth(depth: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) depth -> (N, 1, h, w) on the latent grid (bicubic), each map stretched to [-1, 1].

    The same preprocessing as diffusers' prepare_depth_map; the shapes depth model is trained on it too. A flat
    map (one value everywhere, up to rounding) holds no depth to stretch: it becomes 0, the middle of the range,
    where diffusers divides by zero and the image comes out black.
    """
    depth = torch.nn.functional.interpolate(depth.unsqueeze(1), size=latent_hw, mode="bicubic", align_corners=False)
    low = torch.amin(depth, dim=[1, 2, 3], keepdim=True)
    high = torch.amax(depth, dim=[1, 2, 3], keepdim=True)
    span = high - low
    flat = span <= FLAT * torch.maximum(high.abs(), low.abs())
    stretched = 2.0 * (depth - low) / torch.where(flat, torch.ones_like(span), span) - 1.0
    return torch.where(flat, torch.zeros_like(stretched), stretched)


def depth_condition(ctx: RunContext, depth: torch.Tensor) -> torch.Tensor:
    """The depth channel for every image of the batch, normalised in float32, then in the run's dtype."""
    condition = normalised_depth(depth.float(), ctx.latent_shape[1:])
    if not bool(condition.abs().amax(dim=[1, 2, 3]).all()):
        log.warning("the depth map is flat (one value everywhere); depth2img conditions on a constant middle depth")
    return condition.to(ctx.dtype).repeat(len(ctx.generators), 1, 1, 1)


def prepare(ctx: RunContext) -> LoopSetup:
    """img2img's starting latents plus a model_input hook appending the depth channel."""
    depth = given_depth(ctx) if ctx.cfg.depth_map is not None else estimate_depth(ctx)
    condition = depth_condition(ctx, depth)
    timesteps = cut_timesteps(ctx)

    def with_depth(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([model_in, condition.repeat(model_in.shape[0] // len(condition), 1, 1, 1)], dim=1)

    return LoopSetup(latents=noised_latents(ctx, load_image(ctx), timesteps), timesteps=timesteps, model_input=with_depth)
