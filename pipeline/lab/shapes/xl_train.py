"""Stage 9: the SDXL-format sibling. Its parts grow from the exported base (xl_models.py; the first text encoder one
layer deeper and fitted to the base's features first, xl_align.py) and train jointly, resumably, with EMA (the new
parts at a higher rate), on the base's scenes seen as SDXL's data was (xl_data.py: crops with their offsets, small
originals with their sizes), then export as a StableDiffusionXLPipeline folder whose VAE, tokenizers and scheduler
link to the base's."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.export import export_scaling, folder_size
from pipeline.lab.shapes.latent_cache import training_scenes_seed
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.unet_train import training_batch, update_ema
from pipeline.lab.shapes.world import Scene, make_scenes
from pipeline.lab.shapes.xl_data import View, draw, random_view
from pipeline.lab.shapes.xl_align import align_first_encoder, deeper_encoder
from pipeline.lab.shapes.xl_models import encode_xl, second_encoder, xl_unet

LINKED = {"tokenizer": "tokenizer", "tokenizer_2": "tokenizer", "vae": "vae", "scheduler": "scheduler"}  # -> base's


@torch.no_grad()
def cache_views(config: TrainConfig, run_dir: Path, vae: AutoencoderKL, scenes: list[Scene]) -> dict:
    """Each training scene seen once through a random view, encoded (unscaled posterior means), with its six time
    ids; cached in the run folder."""
    path = run_dir / "xl-latents.safetensors"
    if path.exists():
        return load_file(path)
    spec, rng = config.xl, np.random.default_rng([config.seed, 9])
    views = [random_view(rng, spec.crop_share, spec.small_share, spec.largest, spec.smallest,
                         spec.crop_smallest) for _ in scenes]
    chunks, size = [], config.latents.batch_size
    for start in tqdm(range(0, len(scenes), size), desc="xl views", mininterval=5):
        images = np.stack([draw(s, v) for s, v in zip(scenes[start:start + size], views[start:start + size])])
        pixels = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
        chunks.append(vae.encode(pixels).latent_dist.mean.float().contiguous())
    cached = {"latents": torch.cat(chunks), "time_ids": torch.tensor([v.time_ids for v in views], dtype=torch.float32)}
    save_file(cached, str(path))
    return cached


def build_models(config: TrainConfig, base: Path, captions, fresh: bool) -> tuple[UNet2DConditionModel, CLIPTextModel,
                                                                                   torch.nn.Module]:
    """The sibling's UNet and two text encoders, grown from the base; on a fresh start the first encoder is aligned
    to the base's features (xl_align.py) on `captions(step)`, on a resumed one its weights come from the state."""
    spec = config.xl
    unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32)
    plain = CLIPTextModel.from_pretrained(base / "text_encoder", dtype=torch.float32)
    if fresh and spec.align_steps:
        first, before, after = align_first_encoder(plain, captions, spec.align_steps, spec.align_lr)
        print(f"xl: first encoder's penultimate states fitted to the base's features, mse {before:.3f} -> {after:.4f}")
    else:  # resumed: the state holds its weights; or fitting turned off
        first = deeper_encoder(plain)
    torch.manual_seed(config.seed + 9)
    second = second_encoder(plain, spec.second_hidden, spec.projection)
    return xl_unet(unet, spec.second_hidden, spec.projection, spec.time_embed_dim), first, second


def optimiser_for(models: tuple, spec) -> torch.optim.Optimizer:
    """AdamW with the new parts (the size/crop embedding, the second encoder) at `new_lr`, the rest at `lr`."""
    unet, first, second = models
    new = [*unet.add_embedding.parameters(), *second.parameters()]
    known = {id(p) for p in new}
    rest = [p for m in models for p in m.parameters() if id(p) not in known]
    return torch.optim.AdamW([{"params": rest, "peak": spec.lr}, {"params": new, "peak": spec.new_lr}],
                             lr=spec.lr, weight_decay=0.01)


def xl_loss(models: tuple, tokenizer: CLIPTokenizer, noise_scheduler: DDPMScheduler, cached: dict, scaling: float,
            scenes: list[Scene], config: TrainConfig, step: int) -> torch.Tensor:
    """The step's plain noise-prediction (v) loss, as the base ended its training, with SDXL's conditioning."""
    unet, first, second = models
    picks, ids = training_batch(tokenizer, scenes, dataclasses.replace(config.unet, batch_size=config.xl.batch_size),
                                config.seed, step)
    index = torch.from_numpy(picks)
    clean = cached["latents"][index] * scaling
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(picks),), generator=generator)
    hidden, pooled = encode_xl((first, second), ids)
    prediction = unet(noise_scheduler.add_noise(clean, noise, timesteps), timesteps, encoder_hidden_states=hidden,
                      added_cond_kwargs={"text_embeds": pooled, "time_ids": cached["time_ids"][index]}).sample
    kind = noise_scheduler.config.prediction_type
    target = noise_scheduler.get_velocity(clean, noise, timesteps) if kind == "v_prediction" else noise
    return F.mse_loss(prediction.float(), target)


def export_xl(models: tuple, base: Path, target: Path, dtype: torch.dtype) -> int:
    """Write the StableDiffusionXLPipeline folder (diffusers' own model_index.json; the UNet in `dtype`, the text
    encoders in float32 as the base's), link the shared parts to the base's, swap it in; its size in bytes."""
    unet, first, second = models
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(base / "vae"), text_encoder=first, text_encoder_2=second,
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=copy.deepcopy(unet).to(dtype),
        scheduler=DDIMScheduler.from_pretrained(base / "scheduler"), force_zeros_for_empty_prompt=False,
        add_watermarker=False)
    pipe.save_pretrained(staging, safe_serialization=True)
    for part, base_part in LINKED.items():
        shutil.rmtree(staging / part)
        os.symlink(os.path.relpath(base / base_part, target), staging / part)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return folder_size(target)


def train_xl(config: TrainConfig, run_dir: Path, vae: AutoencoderKL, latent_count: int) -> int:
    """Train (or resume) the SDXL-format sibling and export it to `xl.export_dir`; its size in bytes."""
    spec, base, stage_dir = config.xl, Path(config.export_dir), run_dir / "xl"
    started = time.perf_counter()
    scenes = make_scenes(training_scenes_seed(config), latent_count, config.two_shape_share, config.variation)
    cached = cache_views(config, run_dir, vae, scenes)
    scaling = export_scaling(base)
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    state = load_state(stage_dir / "state.pt")
    batch = dataclasses.replace(config.unet, batch_size=64)
    models = build_models(config, base, lambda step: training_batch(tokenizer, scenes, batch, config.seed + 9, step)[1],
                          fresh=state is None)
    ema = tuple(copy.deepcopy(m).requires_grad_(False) for m in models)
    parameters = [p for m in models for p in m.parameters()]
    optimiser = optimiser_for(models, spec)
    step, elapsed = 0, 0.0
    if state is not None:
        for model, average, saved, saved_ema in zip(models, ema, state["models"], state["ema"]):
            model.load_state_dict(saved)
            average.load_state_dict(saved_ema)
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    started -= elapsed
    noise_scheduler = DDPMScheduler.from_config(config.scheduler)
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="xl", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = group["peak"] * cosine_lr(step, spec.steps, spec.warmup_steps)
        loss = xl_loss(models, tokenizer, noise_scheduler, cached, scaling, scenes, config, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        update_ema(ema, models, spec.ema_decay)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % spec.checkpoint_every == 0 or step + 1 == spec.steps:
            save_state(stage_dir / "state.pt", {
                "models": [m.state_dict() for m in models], "ema": [m.state_dict() for m in ema], "step": step + 1,
                "optimiser": optimiser.state_dict(), "elapsed": time.perf_counter() - started})
    size = export_xl(ema, base, Path(spec.export_dir), DTYPES[config.export_dtype])
    seconds = time.perf_counter() - started
    update_summary(run_dir, "seconds", seconds, stage="xl")
    update_summary(run_dir, "bytes", size, stage="xl")
    print(f"xl: {spec.steps} steps in {seconds / 60:.1f} min -> {spec.export_dir} ({size / 2**20:.1f} MiB)")
    return size
