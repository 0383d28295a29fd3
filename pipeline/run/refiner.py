"""An SDXL refiner as the second expert of a run: checked before loading, then run on the one loop from the base's
latents (engine/experts.py) with its own conditioning, scheduler and VAE."""

from __future__ import annotations

from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from pipeline.common.errors import UserError
from pipeline.engine.experts import second_expert
from pipeline.engine.guidance import is_guided
from pipeline.engine.loop import LoopSetup, StepCallback, denoise
from pipeline.engine.schedulers import check_runnable, make_scheduler
from pipeline.models.components import Components
from pipeline.models.inspect import ModelInfo, inspect_model
from pipeline.run.model_calls import model_call

SDXL_FAMILIES = ("sdxl", "sdxl-refiner")
REFINED_TASKS = ("txt2img", "img2img")


def check_refiner(cfg: DictConfig, info: ModelInfo, scheduler: str) -> Optional[ModelInfo]:
    """The refiner's configs when refiner.path is set, after one-sentence checks: an SDXL base, a task the two
    experts share, a switch point inside the steps, and an SDXL model at refiner.path; None without a refiner."""
    if info.family_name == "sdxl-refiner" and cfg.task == "txt2img":
        raise UserError(f"model.path {cfg.model.path} is an SDXL refiner, trained for the last steps only: use it as "
                        "refiner.path of an SDXL base, or on its own with task img2img.")
    if not cfg.refiner.path:
        return None
    if info.family_name != "sdxl":
        raise UserError(f"refiner.path refines an SDXL base; model.path {cfg.model.path} is a {info.family.label} "
                        "model.")
    if cfg.task not in REFINED_TASKS:
        raise UserError(f"refiner.path works with task {' or '.join(REFINED_TASKS)}; got task '{cfg.task}'.")
    if not 0 < cfg.refiner.switch_at < 1:
        raise UserError(f"refiner.switch_at must be a number between 0 and 1 (the base's share of the steps); got "
                        f"{cfg.refiner.switch_at}.")
    refiner = inspect_model(cfg.refiner.path, cfg.model.allow_pickle, cfg.refiner.config)
    if refiner.family_name not in SDXL_FAMILIES:
        raise UserError(f"refiner.path {cfg.refiner.path} is a {refiner.family.label} model; an SDXL base is refined "
                        "by an SDXL refiner (or another SDXL model).")
    check_runnable(scheduler, refiner.scheduler, OmegaConf.to_container(cfg.scheduler.options, resolve=True),
                   cfg.steps)
    return refiner


def refine(refiner: Components, cfg: DictConfig, latents: torch.Tensor, seeds: list[int],
           generators: list[torch.Generator], size: tuple[int, int], progress: bool = True,
           callback: Optional[StepCallback] = None) -> torch.Tensor:
    """The refiner's steps of the same schedule from the base's latents, as they are (no new noise)."""
    options = OmegaConf.to_container(cfg.scheduler.options, resolve=True)
    scheduler = make_scheduler(cfg.scheduler.name, refiner.scheduler_config, options, seeds)
    timesteps = second_expert(scheduler, cfg.steps, cfg.refiner.switch_at, refiner.device)
    guided = is_guided(cfg.guidance_scale, refiner.unet.config)
    conditioning = refiner.family.encode(refiner, cfg, len(seeds), guided, size)
    setup = LoopSetup(latents=latents.to(refiner.device, refiner.dtype), timesteps=timesteps)
    return denoise(model_call(refiner, cfg, setup), scheduler, setup, conditioning, cfg.guidance_scale,
                   cfg.guidance_rescale, generators, callback=callback, progress=progress,
                   guidance_cutoff=cfg.performance.guidance_cutoff)
