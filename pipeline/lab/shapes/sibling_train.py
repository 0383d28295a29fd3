"""Fine-tuning a sibling of the base model (depth, inpaint): the exported base UNet with extra, zero-initialised
input channels, trained with the text encoder frozen, resumably, then exported beside the base (shared parts linked)."""

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable, Protocol

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.export import export_scaling, save_weights
from pipeline.lab.shapes.latent_cache import training_scenes_seed
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.unet_train import diffusion_loss, step_gamma
from pipeline.lab.shapes.world import Scene, make_scenes
from pipeline.lab.fixtures.tiny_model import write_model_index

SHARED_PARTS = ("tokenizer", "text_encoder", "vae", "scheduler")
# (step, the step's scenes) -> the conditioning channels appended to the noisy latents
Channels = Callable[[int, list[Scene]], torch.Tensor]


class SiblingSpec(Protocol):
    """What a sibling stage's config gives (DepthConfig, InpaintConfig)."""

    export_dir: str
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    checkpoint_every: int


def widen_conv_in(unet: UNet2DConditionModel, extra: int = 1) -> UNet2DConditionModel:
    """A copy of the UNet taking `extra` more input channels, whose weights start at zero (same outputs at first)."""
    wider = UNet2DConditionModel.from_config({**unet.config, "in_channels": unet.config.in_channels + extra})
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], dim=1)
    wider.load_state_dict(state)
    return wider


def export_sibling(unet: UNet2DConditionModel, base: Path, target: Path, dtype: torch.dtype = torch.float32) -> None:
    """Write a sibling's UNet (weights in `dtype`); the other parts link to the base model's folders (no second
    copy in git)."""
    target.mkdir(parents=True, exist_ok=True)
    save_weights(unet, target / "unet", dtype)
    for part in SHARED_PARTS:
        link = target / part
        if not link.is_symlink():
            os.symlink(os.path.relpath(base / part, target), link)
    scheduler = json.loads((base / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    write_model_index(target, scheduler, unet_in_channels=unet.config.in_channels)


def fine_tune(
    config: TrainConfig, run_dir: Path, latents: torch.Tensor, spec: SiblingSpec, stage: str, extra: int,
    channels: Channels, region_weights: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Fine-tune (or resume) the sibling UNet from the exported base model and export it beside it."""
    base, stage_dir = Path(config.export_dir), run_dir / stage
    started = time.perf_counter()
    unet = widen_conv_in(UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32), extra)
    text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder", dtype=torch.float32).requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    scaling = export_scaling(base)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=spec.lr, weight_decay=0.01)
    step = 0
    state = load_state(stage_dir / "state.pt")
    if state is not None:
        unet.load_state_dict(state["unet"])
        optimiser.load_state_dict(state["optimiser"])
        step = state["step"]
    scenes = make_scenes(training_scenes_seed(config), len(latents), config.two_shape_share, config.variation)
    gamma = step_gamma(config.unet, config.unet.steps)  # the siblings go on with the loss the base ended with
    recipe = dataclasses.replace(config, unet=dataclasses.replace(config.unet, batch_size=spec.batch_size,
                                                                  min_snr_gamma=gamma))
    noise_scheduler = DDPMScheduler.from_config(config.scheduler)
    for step in tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc=stage, mininterval=5):
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, spec.warmup_steps)
        loss = diffusion_loss((unet, text_encoder), tokenizer, noise_scheduler, latents * scaling, scenes, recipe,
                              step, extra_channels=lambda picked, at=step: channels(at, picked),
                              region_weights=region_weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimiser.step()
        if (step + 1) % spec.checkpoint_every == 0:
            save_state(stage_dir / "state.pt", {"unet": unet.state_dict(), "optimiser": optimiser.state_dict(),
                                                "step": step + 1})
    export_sibling(unet, base, Path(spec.export_dir), DTYPES[config.export_dtype])
    seconds = time.perf_counter() - started
    update_summary(run_dir, "seconds", seconds, stage=stage)
    print(f"{stage}: {spec.steps} steps in {seconds / 60:.1f} min -> {spec.export_dir}")
