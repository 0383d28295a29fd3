"""Stage 2: encode the UNet's training scenes once and measure the VAE scaling factor."""

import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pipeline.lab.shapes.checkpoint import update_summary
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.world import make_scenes, render_batch


def training_scenes_seed(config: TrainConfig) -> int:
    """Seed of the UNet's scene set (distinct from the VAE's and the held-out ones)."""
    return config.seed + 2


@torch.no_grad()
def cache_latents(config: TrainConfig, run_dir: Path, vae: AutoencoderKL) -> torch.Tensor:
    """Return unscaled posterior-mean latents of the training scenes; set vae's scaling_factor."""
    path = run_dir / "latents.safetensors"
    if path.exists():
        saved = load_file(path)
        vae.register_to_config(scaling_factor=float(saved["scaling_factor"]))
        return saved["latents"]
    started = time.perf_counter()
    count, share = config.latents.scenes, config.two_shape_share
    scenes = make_scenes(training_scenes_seed(config), count, share, config.variation)
    size = config.latents.batch_size
    chunks = []
    for start in tqdm(range(0, len(scenes), size), desc="latents", mininterval=5):
        images = torch.from_numpy(render_batch(scenes[start : start + size]))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            chunks.append(vae.encode(images).latent_dist.mean.float().contiguous())
    latents = torch.cat(chunks)
    scaling_factor = 1.0 / latents.std().item()
    vae.register_to_config(scaling_factor=scaling_factor)
    save_file({"latents": latents, "scaling_factor": torch.tensor(scaling_factor)}, str(path))
    seconds = time.perf_counter() - started
    record = {"seconds": seconds, "scenes": count, "scaling_factor": scaling_factor}
    for key, value in record.items():
        update_summary(run_dir, key, value, stage="latents")
    print(f"latents: {count} scenes in {seconds / 60:.1f} min, scaling factor {scaling_factor:.4f}")
    return latents
