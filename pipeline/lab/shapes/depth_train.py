"""Stage 5: the depth2img model. The trained UNet gets a fifth input channel (depth, zero-initialised, as
Stable Diffusion 2's depth model was made from its base model) and is fine-tuned with the text encoder frozen."""

from pathlib import Path

import numpy as np
import torch

from pipeline.lab.shapes.sibling_train import fine_tune
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.world import Scene, render
from pipeline.variants.depth2img import normalised_depth


def depth_channels(scenes: list[Scene], latent_hw: tuple[int, int]) -> torch.Tensor:
    """The scenes' depth maps as the depth2img variant feeds them to the UNet."""
    depths = torch.from_numpy(np.stack([render(scene)[1] for scene in scenes]))
    return normalised_depth(depths, latent_hw)


def train_depth(config: TrainConfig, run_dir: Path, latents: torch.Tensor) -> None:
    """Fine-tune (or resume) the depth UNet from the exported model and export it beside it."""
    hw = tuple(latents.shape[-2:])
    fine_tune(config, run_dir, latents, config.depth, "depth", 1, lambda step, picked: depth_channels(picked, hw))
