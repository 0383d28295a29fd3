"""Stage 3: train the UNet and the text encoder jointly on cached latents, resumably, with EMA."""

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.shapes.captions import training_caption
from pipeline.shapes.checkpoint import (
    append_eval, cosine_lr, load_state, save_state, update_summary,
)
from pipeline.shapes.evaluate import accuracy, eval_specs, score_image
from pipeline.shapes.latent_cache import training_scenes_seed
from pipeline.shapes.models import SCHEDULER_CONFIG, build_text_encoder, build_unet
from pipeline.shapes.sample import sample
from pipeline.shapes.train_config import TrainConfig
from pipeline.shapes.world import Scene, make_scenes

Models = tuple[UNet2DConditionModel, CLIPTextModel]


def adherence(
    models: Models, tokenizer: CLIPTokenizer, vae: AutoencoderKL, seeds: int, steps: int,
    guidance: float,
) -> dict[str, float]:
    """Colour / background / shape accuracy (%) over the fixed prompt set, `seeds` images each."""
    specs = [spec for spec in eval_specs() for _ in range(seeds)]
    seed_list = [k for _ in eval_specs() for k in range(seeds)]
    images = sample(*models, tokenizer, vae, [s.prompt for s in specs], seed_list, steps, guidance)
    return accuracy([score_image(image, spec) for image, spec in zip(images, specs)])


def min_snr_weights(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma) / SNR for epsilon prediction (Hang et al. 2023)."""
    alpha = alphas_cumprod[timesteps]
    snr = alpha / (1 - alpha)
    return snr.clamp(max=gamma) / snr if gamma > 0 else torch.ones_like(snr)


def diffusion_loss(
    models: Models, tokenizer: CLIPTokenizer, noise_scheduler: DDPMScheduler, latents: torch.Tensor,
    scenes: list[Scene], config: TrainConfig, step: int,
    extra_channels: Callable[[list[Scene]], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The step's min-SNR-weighted noise-prediction loss; its batch depends on (seed, step) only.

    `extra_channels(scenes)` gives conditioning channels appended to the noisy latents (the depth model's).
    """
    unet, text_encoder = models
    spec = config.unet
    rng = np.random.default_rng([config.seed, 3, step])
    picks = rng.integers(0, len(scenes), size=spec.batch_size)
    captions = [
        training_caption(scenes[i], rng, spec.caption_drop, spec.caption_empty) for i in picks
    ]
    ids = tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids
    clean = latents[torch.from_numpy(picks)]
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (len(picks),), generator=generator
    )
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    if extra_channels is not None:
        noisy = torch.cat([noisy, extra_channels([scenes[i] for i in picks])], dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        prediction = unet(noisy, timesteps, encoder_hidden_states=text_encoder(ids)[0]).sample
    per_sample = F.mse_loss(prediction.float(), noise, reduction="none").mean(dim=(1, 2, 3))
    weights = min_snr_weights(noise_scheduler.alphas_cumprod, timesteps, spec.min_snr_gamma)
    return (weights * per_sample).mean()


@torch.no_grad()
def update_ema(ema: Models, models: Models, decay: float) -> None:
    """Move EMA weights towards the trained ones."""
    for ema_model, model in zip(ema, models):
        for ema_param, param in zip(ema_model.parameters(), model.parameters()):
            ema_param.lerp_(param, 1.0 - decay)


def _load_final(stage_dir: Path) -> Models:
    """The finished stage's EMA models."""
    return (
        UNet2DConditionModel.from_pretrained(stage_dir / "final" / "unet"),
        CLIPTextModel.from_pretrained(stage_dir / "final" / "text_encoder"),
    )


def train_unet(
    config: TrainConfig, run_dir: Path, vae: AutoencoderKL, latents: torch.Tensor,
    tokenizer: CLIPTokenizer,
) -> Models:
    """Train (or resume, or load the finished) UNet + text encoder; return their EMA weights."""
    stage_dir, spec, ev = run_dir / "unet", config.unet, config.eval
    if (stage_dir / "final" / "unet" / "config.json").exists():
        return _load_final(stage_dir)
    torch.manual_seed(config.seed)
    models = (
        build_unet(spec, config.vae, config.text),
        build_text_encoder(config.text, len(tokenizer)),
    )
    ema = tuple(copy.deepcopy(m).requires_grad_(False) for m in models)
    params = [p for m in models for p in m.parameters()]
    optimiser = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.01)
    step, elapsed = 0, 0.0
    state = load_state(stage_dir / "state.pt")
    if state is not None:
        for model, key in zip((*models, *ema), ("unet", "text", "ema_unet", "ema_text")):
            model.load_state_dict(state[key])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    noise_scheduler = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    scaled = latents * vae.config.scaling_factor
    scenes = make_scenes(training_scenes_seed(config), len(latents), config.two_shape_share)
    started = time.perf_counter() - elapsed
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="unet", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, spec.warmup_steps)
        loss = diffusion_loss(models, tokenizer, noise_scheduler, scaled, scenes, config, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        update_ema(ema, models, min(spec.ema_decay, (1 + step) / (10 + step)))
        done = step + 1
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if done % spec.eval_every == 0 and done < spec.steps:
            scores = adherence(ema, tokenizer, vae, ev.seeds_during, ev.steps, ev.guidance)
            record = {"step": done, "minutes": (time.perf_counter() - started) / 60, **scores}
            append_eval(run_dir, record)
            shown = ", ".join(f"{key} {value:.0f}%" for key, value in scores.items())
            tqdm.write(f"unet step {done}: {shown}")
        if done % spec.checkpoint_every == 0 or done == spec.steps:
            save_state(stage_dir / "state.pt", {
                "unet": models[0].state_dict(), "text": models[1].state_dict(),
                "ema_unet": ema[0].state_dict(), "ema_text": ema[1].state_dict(),
                "optimiser": optimiser.state_dict(), "step": done,
                "elapsed": time.perf_counter() - started,
            })
    seconds = time.perf_counter() - started
    scores = adherence(ema, tokenizer, vae, ev.seeds_final, ev.steps, ev.guidance)
    append_eval(run_dir, {"step": spec.steps, "minutes": seconds / 60, "final": True, **scores})
    ema[0].save_pretrained(stage_dir / "final" / "unet")
    ema[1].save_pretrained(stage_dir / "final" / "text_encoder")
    for key, value in {"seconds": seconds, "steps": spec.steps, "final_scores": scores}.items():
        update_summary(run_dir, key, value, stage="unet")
    print(f"unet: {spec.steps} steps in {seconds / 60:.1f} min, final " + str(scores))
    return ema
