"""The tiny-shapes recipe: VAE -> cached latents -> UNet + text encoder -> diffusers folder."""

import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from omegaconf import OmegaConf

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import read_summary, update_summary
from pipeline.lab.shapes.controlnet_train import train_controlnet
from pipeline.lab.shapes.depth_train import train_depth
from pipeline.lab.shapes.export import export_model
from pipeline.lab.shapes.flow_train import train_flow
from pipeline.lab.shapes.inpaint_train import train_inpaint
from pipeline.lab.shapes.lcm_train import train_lcm
from pipeline.lab.shapes.xl_train import train_xl
from pipeline.lab.shapes.latent_cache import cache_latents
from pipeline.lab.shapes.train_config import STAGES, TrainConfig, load_config
from pipeline.lab.shapes.unet_train import train_unet
from pipeline.lab.shapes.vae_train import train_vae
from pipeline.lab.shapes.vocab import save_tokenizer
from pipeline.common.errors import UserError


def run(config: TrainConfig) -> dict:
    """Run (or resume) every stage up to `config.until`; return the run's summary."""
    torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    first = STAGES.index(config.after) + 1 if config.after else 0
    last = STAGES.index(config.until)
    wanted = lambda stage: first <= STAGES.index(stage) <= last  # noqa: E731
    print(f"precision: {config.autocast.name} ({config.autocast.reason})")
    if first > STAGES.index("export"):  # the later stages start from the exported model, and encode with its VAE
        vae = AutoencoderKL.from_pretrained(Path(config.export_dir) / "vae", torch_dtype=torch.float32)
    else:
        vae = train_vae(config, run_dir)
    if last >= STAGES.index("latents"):
        latents = cache_latents(config, run_dir, vae)
    if wanted("unet"):
        tokenizer = save_tokenizer(run_dir / "tokenizer")
        models = train_unet(config, run_dir, vae, latents, tokenizer)
    if wanted("export"):
        started = time.perf_counter()
        size = export_model(models, vae, Path(config.export_dir), config.scheduler, DTYPES[config.export_dtype])
        update_summary(run_dir, "seconds", time.perf_counter() - started, stage="export")
        update_summary(run_dir, "bytes", size, stage="export")
        print(f"export: {config.export_dir} ({size / 2**20:.1f} MiB)")
    if wanted("depth"):
        train_depth(config, run_dir, latents)
    if wanted("inpaint"):
        train_inpaint(config, run_dir, latents)
    if wanted("controlnet"):
        train_controlnet(config, run_dir, latents)
    if wanted("lcm"):
        train_lcm(config, run_dir, latents)
    if wanted("xl"):
        train_xl(config, run_dir, vae, len(latents))
    if wanted("flow"):
        train_flow(config, run_dir, latents)
    return read_summary(run_dir)


def main(argv: list[str]) -> None:
    """Entry point: `train.py CONFIG.yaml [key=value ...]`."""
    if not argv or "=" in argv[0]:
        raise SystemExit("usage: train.py CONFIG.yaml [key=value ...]")
    try:
        config = load_config(argv[0], argv[1:])
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    summary = run(config)
    for stage, info in summary["stages"].items():
        print(f"{stage}: {info.get('seconds', 0.0) / 60:.1f} min")
