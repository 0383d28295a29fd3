"""Stage 1: train the AutoencoderKL on freshly rendered scenes, resumably."""

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm import tqdm

from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.models import build_vae
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.world import Variation, make_scenes, random_scene, render_batch


def scene_batch(
    seed: int, step: int, size: int, two_shape_share: float, variation: Variation | None = None
) -> torch.Tensor:
    """The step's images in [-1, 1]; a function of (seed, step) alone, so a resume repeats it."""
    rng = np.random.default_rng([seed, step])
    scenes = [random_scene(rng, two_shape_share, variation) for _ in range(size)]
    return torch.from_numpy(render_batch(scenes))


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical neighbour differences of an image batch."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def edge_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance between image gradients (keeps the flat shapes' edges sharp)."""
    (ox, oy), (tx, ty) = _gradients(output), _gradients(target)
    return F.l1_loss(ox, tx) + F.l1_loss(oy, ty)


@torch.no_grad()
def psnr(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Reconstruction PSNR in dB (fp32, posterior mean) on a fixed set of images."""
    output = vae.decode(vae.encode(images).latent_dist.mode()).sample.clamp(-1, 1)
    mse = F.mse_loss((output + 1) / 2, (images + 1) / 2).item()
    return float(10 * np.log10(1.0 / max(mse, 1e-10)))


def vae_loss(
    vae: AutoencoderKL, images: torch.Tensor, config: TrainConfig, step: int
) -> torch.Tensor:
    """L1 + MSE + edge reconstruction loss plus a small KL term."""
    posterior = vae.encode(images).latent_dist
    noise = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    latents = posterior.mean + posterior.std * torch.randn(
        posterior.mean.shape, generator=noise, dtype=posterior.mean.dtype
    )
    output = vae.decode(latents).sample.float()
    loss = F.l1_loss(output, images) + F.mse_loss(output, images)
    loss = loss + config.vae.edge_weight * edge_loss(output, images)
    return loss + config.vae.kl_weight * posterior.kl().float().mean()


def train_vae(config: TrainConfig, run_dir: Path) -> AutoencoderKL:
    """Train (or resume, or load the finished) VAE; the result is saved in run_dir/vae/final."""
    stage_dir, spec = run_dir / "vae", config.vae
    if (stage_dir / "final" / "config.json").exists():
        return AutoencoderKL.from_pretrained(stage_dir / "final")
    torch.manual_seed(config.seed)
    vae = build_vae(spec)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=spec.lr, weight_decay=0.0)
    state = load_state(stage_dir / "state.pt")
    step, elapsed = 0, 0.0
    if state is not None:
        vae.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    held_out_scenes = make_scenes(config.seed + 1, 64, config.two_shape_share, config.variation)
    held_out = torch.from_numpy(render_batch(held_out_scenes))
    started = time.perf_counter() - elapsed
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="vae", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, warmup=50)
        images = scene_batch(config.seed, step, spec.batch_size, config.two_shape_share, config.variation)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = vae_loss(vae, images, config, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        done = step + 1
        if done % spec.checkpoint_every == 0 or done == spec.steps:
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr(vae, held_out):.1f}")
            elapsed = time.perf_counter() - started
            save_state(stage_dir / "state.pt", {
                "model": vae.state_dict(), "optimiser": optimiser.state_dict(),
                "step": done, "elapsed": elapsed,
            })
    quality = psnr(vae, held_out)
    vae.save_pretrained(stage_dir / "final")
    seconds = time.perf_counter() - started
    for key, value in {"seconds": seconds, "steps": spec.steps, "psnr_db": quality}.items():
        update_summary(run_dir, key, value, stage="vae")
    print(f"vae: {spec.steps} steps in {seconds / 60:.1f} min, held-out PSNR {quality:.1f} dB")
    return vae
