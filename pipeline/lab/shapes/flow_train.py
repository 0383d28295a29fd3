"""Stage 10: the flow-matching member. An SD3-format transformer learns, from scratch, the velocity from the base's
latents to noise (rectified flow: x_t = (1 - s) x_0 + s e, target e - x_0, s drawn logit-normal as SD3 trained,
Esser et al. 2024, section 3.1; `flow.sigma_mean` / `sigma_std` its location and scale; with `flow.teacher` the
target is the base UNet's estimate of it, flow_teacher.py), with captions dropped as the base's were so
classifier-free guidance works; resumably, with EMA; exported as a StableDiffusion3Pipeline folder whose VAE links to
the base's. Its tokenizer is the base's with a shorter window (`flow.text_tokens`; the
world's captions take at most 18 tokens): SD3's pipeline pads the CLIP prompts to the tokenizer's length, and every
token is a row of the joint attention, so 32 tokens instead of 77 make a training step about a third cheaper."""

from __future__ import annotations

import copy
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.export import export_scaling, folder_size
from pipeline.lab.shapes.flow_models import encode_flow, flow_transformer, projected_encoder
from pipeline.lab.shapes.flow_samples import flow_batch, pool_batch, scene_draw, teacher_pool
from pipeline.lab.shapes.flow_teacher import Teacher
from pipeline.lab.shapes.latent_cache import training_scenes_seed
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.unet_train import update_ema
from pipeline.lab.shapes.world import make_scenes

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"


def flow_loss(transformer, encoder, tokenizer: CLIPTokenizer, latents: torch.Tensor, scaling: float, scenes,
              config: TrainConfig, step: int, teacher: Teacher | None = None, draw=None,
              pool: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The step's velocity loss on flow_batch's samples (with a teacher, taught ones), or with a `pool` on a batch
    drawn from it; either depends on (seed, step) only."""
    spec = config.flow
    if pool is None:
        noisy, sigma, ids, target = flow_batch(tokenizer, latents, scaling, scenes, config, 0, step, draw, teacher)
    else:
        noisy, sigma, ids, target = pool_batch(pool, config, step)
    hidden, pooled = encode_flow(encoder, ids, spec.t5_tokens)
    prediction = transformer(hidden_states=noisy, timestep=sigma * 1000, encoder_hidden_states=hidden,
                             pooled_projections=pooled, return_dict=False)[0]
    return F.mse_loss(prediction.float(), target)


def flow_tokenizer(base: Path, tokens: int) -> CLIPTokenizer:
    """The base's tokenizer with the flow model's window: prompts padded or cut to `tokens` (start and end
    included)."""
    return CLIPTokenizer.from_pretrained(base / "tokenizer", model_max_length=tokens)


def export_flow(transformer, encoder, tokenizer: CLIPTokenizer, base: Path, target: Path, dtype: torch.dtype,
                shift: float) -> int:
    """Write the StableDiffusion3Pipeline folder (no T5; the transformer in `dtype`), link the VAE's weights to the
    base's and the second encoder and tokenizer to the first, swap it in; its size in bytes. The VAE's
    config is its own, with shift_factor 0.0 written out: SD3's pipelines add the shift when they decode, and a
    null one (SD's VAEs have none) fails there."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipe = StableDiffusion3Pipeline(
        transformer=copy.deepcopy(transformer).to(dtype), scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=AutoencoderKL.from_pretrained(base / "vae", shift_factor=0.0), text_encoder=encoder, tokenizer=tokenizer,
        text_encoder_2=encoder, tokenizer_2=tokenizer, text_encoder_3=None, tokenizer_3=None)
    pipe.save_pretrained(staging, safe_serialization=True)
    (staging / "vae" / VAE_WEIGHTS).unlink()
    os.symlink(os.path.relpath(base / "vae" / VAE_WEIGHTS, target / "vae"), staging / "vae" / VAE_WEIGHTS)
    for second, first in (("text_encoder_2", "text_encoder"), ("tokenizer_2", "tokenizer")):
        shutil.rmtree(staging / second)
        os.symlink(first, staging / second)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return folder_size(target)


def train_flow(config: TrainConfig, run_dir: Path, latents: torch.Tensor) -> int:
    """Train (or resume) the flow-matching member and export it to `flow.export_dir`; its size in bytes."""
    spec, base, stage_dir = config.flow, Path(config.export_dir), run_dir / "flow"
    started = time.perf_counter()
    scenes = make_scenes(training_scenes_seed(config), len(latents), config.two_shape_share, config.variation)
    scaling = export_scaling(base)
    tokenizer = flow_tokenizer(base, spec.text_tokens)
    encoder = projected_encoder(CLIPTextModel.from_pretrained(base / "text_encoder", dtype=torch.float32))
    torch.manual_seed(config.seed + 10)
    transformer = flow_transformer(spec, encoder.config.hidden_size, latents.shape[1], latents.shape[-1])
    ema = copy.deepcopy(transformer).requires_grad_(False)
    base_tokens = CLIPTokenizer.from_pretrained(base / "tokenizer").model_max_length
    taught = spec.teacher > 0 and spec.teacher_share > 0
    teacher = Teacher(base, encoder, tokenizer.pad_token_id, base_tokens) if taught else None
    draw = scene_draw(scenes, spec.two_shape_batch)
    pool = teacher_pool(teacher, tokenizer, latents, scaling, scenes, config, draw, stage_dir / "pool.safetensors")
    optimiser = torch.optim.AdamW(transformer.parameters(), lr=spec.lr, weight_decay=0.01)
    step, elapsed, state = 0, 0.0, load_state(stage_dir / "state.pt")
    if state is not None:
        transformer.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    started -= elapsed
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="flow", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, spec.warmup_steps)
        loss = flow_loss(transformer, encoder, tokenizer, latents, scaling, scenes, config, step, teacher, draw, pool)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        optimiser.step()
        update_ema((ema,), (transformer,), spec.ema_decay)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % spec.checkpoint_every == 0 or step + 1 == spec.steps:
            save_state(stage_dir / "state.pt", {"model": transformer.state_dict(), "ema": ema.state_dict(),
                                                "optimiser": optimiser.state_dict(), "step": step + 1,
                                                "elapsed": time.perf_counter() - started})
    size = export_flow(ema, encoder, tokenizer, base, Path(spec.export_dir), DTYPES[config.export_dtype], spec.shift)
    seconds = time.perf_counter() - started
    update_summary(run_dir, "seconds", seconds, stage="flow")
    update_summary(run_dir, "bytes", size, stage="flow")
    print(f"flow: {spec.steps} steps in {seconds / 60:.1f} min -> {spec.export_dir} ({size / 2**20:.1f} MiB)")
    return size
