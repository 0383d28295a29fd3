"""noise: an image's latent diffused forward to several noise levels with one Gaussian draw, decoded as a grid.

A noise-prediction model's levels are fractions of its training timesteps (q(x_t | x_0) from its betas); a flow
model's (SD3, FLUX) are its flow time: sigma = level, shifted by the scheduler's `shift` as its training and
sampling sigmas are (unshifted where the shift depends on the image size, FLUX-dev's), and x = (1 - sigma) x_0 +
sigma e."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from diffusers import DDPMScheduler
from omegaconf import DictConfig
from PIL import Image

from pipeline.tools.drawing import caption, grid
from pipeline.engine.latents import generators_for, initial_noise
from pipeline.engine.schedulers import FLOW
from pipeline.tools.run_folder import save_png
from pipeline.tools.latent_space.channels import channel_ranges, latent_preview
from pipeline.tools.latent_space.common import ToolResult, decode_image, encoded_config_image, start_run


def timestep_for(level: float, train_steps: int) -> Optional[int]:
    """The training timestep a level in [0, 1] names: None (clean) at 0, else round(level x T) - 1 within [0, T - 1]."""
    if level == 0:
        return None
    return min(train_steps - 1, max(0, round(level * train_steps) - 1))


def forward_process(scheduler_config: Mapping[str, Any]) -> DDPMScheduler:
    """The model's noise schedule (its betas) as a scheduler whose add_noise gives q(x_t | x_0)."""
    return DDPMScheduler.from_config(scheduler_config)


def diffuse(latent: torch.Tensor, noise: torch.Tensor, level: float, process: DDPMScheduler) -> torch.Tensor:
    """sqrt(alpha_bar_t) latent + sqrt(1 - alpha_bar_t) noise at the level's timestep; the latent itself at 0."""
    t = timestep_for(level, process.config.num_train_timesteps)
    if t is None:
        return latent
    return process.add_noise(latent, noise.to(latent.dtype), torch.tensor([t], device=latent.device))


def signal_share(level: float, process: DDPMScheduler) -> float:
    """sqrt(alpha_bar_t): how much of the clean latent is left at a noise level."""
    t = timestep_for(level, process.config.num_train_timesteps)
    return 1.0 if t is None else float(process.alphas_cumprod[t].sqrt())


class FlowProcess:
    """A flow model's forward process at a level: sigma(level) = shift x level / (1 + (shift - 1) x level)."""

    def __init__(self, config: Mapping[str, Any]):
        self.shift = 1.0 if config.get("use_dynamic_shifting") else float(config.get("shift", 1.0))

    def sigma(self, level: float) -> float:
        """The noise share at a level in [0, 1]."""
        return self.shift * level / (1 + (self.shift - 1) * level)


def flow_diffuse(latent: torch.Tensor, noise: torch.Tensor, level: float, process: FlowProcess) -> torch.Tensor:
    """(1 - sigma) latent + sigma noise: rectified flow's straight path at the level's sigma."""
    sigma = process.sigma(level)
    return (1 - sigma) * latent + sigma * noise.to(latent.dtype)


def seeded_noise(latent: torch.Tensor, seed: int) -> torch.Tensor:
    """One Gaussian draw shaped like the latent, from the seed's CPU generator."""
    return initial_noise(generators_for([seed]), tuple(latent.shape[1:]), latent.device, latent.dtype)


def noise(cfg: DictConfig) -> ToolResult:
    """Decode `image`'s latent at each of latents.noise_levels: decoded images above, latent previews below."""
    plan, vae, image, latent = encoded_config_image(cfg, ("the noise grid (2 rows x latents.noise_levels)",
                                                           2 * len(cfg.latents.noise_levels)))
    flow = plan.info.family.schedulers == FLOW
    process = FlowProcess(plan.info.scheduler) if flow else forward_process(plan.info.scheduler)
    epsilon = seeded_noise(latent, cfg.seed)
    levels = list(cfg.latents.noise_levels)
    noisy = [(flow_diffuse if flow else diffuse)(latent, epsilon, level, process) for level in levels]
    ranges = channel_ranges(noisy)
    decoded = [decode_image(vae, z) for z in noisy]
    previews = [latent_preview(z, ranges).resize(image.size, Image.NEAREST) for z in noisy]
    labels = []
    for level in levels:
        if flow:
            labels.append(f"level {level:g}\nsigma {process.sigma(level):.2f}")
            continue
        t = timestep_for(level, process.config.num_train_timesteps)
        labels.append(f"level {level:g}\n" + ("clean" if t is None else f"timestep {t}"))
    sheet = grid([decoded, previews], labels, ["decoded", "latent"])
    sheet = caption(sheet, f"one Gaussian draw (seed {cfg.seed}) mixed in as the model's noise schedule does")
    folder, files = start_run(cfg, plan.output_dir, "noise")
    files["grid"] = save_png(sheet, folder, "noise.png")
    share = (lambda level: 1 - process.sigma(level)) if flow else (lambda level: signal_share(level, process))
    numbers = {f"signal_at_{level:g}": share(level) for level in levels}
    return ToolResult(folder, files, numbers)
