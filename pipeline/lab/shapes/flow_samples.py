"""The flow stage's training samples: rectified flow's noisy latents and velocity targets (x_t = (1 - s) x_0 + s e,
target e - x_0, s logit-normal), the teacher's answers in place of the targets on the noisiest `flow.teacher_share`
of a batch, the batch's mix of one- and two-shape scenes (`flow.two_shape_batch`), and the teacher pool
(`flow.teacher_pool`): that many taught samples made once before training, from which every step then draws its
batch, so the teacher's UNet runs once per pooled sample instead of once per trained one."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pipeline.common.errors import UserError
from pipeline.lab.shapes.unet_train import training_batch

KEYS = ("noisy", "sigma", "ids", "target")


def training_sigmas(spec, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` noise levels in (0, 1), logit-normal: sigmoid of N(spec.sigma_mean, spec.sigma_std)."""
    return torch.sigmoid(spec.sigma_mean + spec.sigma_std * torch.randn(count, generator=generator))


def flow_batch(tokenizer, latents: torch.Tensor, scaling: float, scenes, config, stream: int, step: int, draw=None,
               teacher=None) -> tuple[torch.Tensor, ...]:
    """Draw `step` of sample stream `stream` (0: the training steps; 1: the pool), from (seed, stream, step) only:
    (noisy latents, sigmas, caption ids, targets). With a teacher, the target of the `flow.teacher_share` noisiest
    samples is `flow.teacher` parts its velocity and the rest the data's `e - x_0`; the others keep the data's."""
    spec = config.flow
    picks, ids = training_batch(tokenizer, scenes, dataclasses.replace(config.unet, batch_size=spec.batch_size),
                                config.seed + 10 + stream, step, draw)
    clean = latents[torch.from_numpy(picks)] * scaling
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 10 * step + stream)
    noise = torch.randn(clean.shape, generator=generator)
    sigma = training_sigmas(spec, len(picks), generator)
    s = sigma[:, None, None, None]
    noisy, target = (1 - s) * clean + s * noise, noise - clean
    rows = sigma.argsort(descending=True)[: round(spec.teacher_share * len(picks))]
    if teacher is not None and len(rows):  # a teacher is built only when flow.teacher and teacher_share are > 0
        taught, inside = teacher.velocity(noisy[rows], sigma[rows], ids[rows])
        mixed = spec.teacher * taught + (1 - spec.teacher) * target[rows]
        target = target.index_copy(0, rows, torch.where(inside[:, None, None, None], mixed, target[rows]))
    return noisy, sigma, ids, target


def scene_draw(scenes, share: float):
    """None (scenes drawn uniformly) when `share` is 0; else the draw training_batch takes: `share` of each batch
    from the two-shape scenes, the rest from the one-shape ones, shuffled."""
    if share == 0:
        return None
    two = np.flatnonzero([len(scene.shapes) == 2 for scene in scenes])
    one = np.flatnonzero([len(scene.shapes) == 1 for scene in scenes])
    if len(two) == 0 or (share < 1 and len(one) == 0):
        raise UserError(f"flow.two_shape_batch {share} needs scenes of both kinds; the world has {len(one)} with one "
                        f"shape and {len(two)} with two (two_shape_share).")

    def draw(rng: np.random.Generator, count: int) -> np.ndarray:
        taken = round(share * count)
        return rng.permutation(np.concatenate([rng.choice(two, taken), rng.choice(one, count - taken)]))

    return draw


def teacher_pool(teacher, tokenizer, latents: torch.Tensor, scaling: float, scenes, config, draw,
                 path: Path) -> dict[str, torch.Tensor] | None:
    """The pool (None when `flow.teacher_pool` is 0): read from `path` when a run made it, else drawn from stream 1
    batch by batch, taught, and written there (atomically) for a resumed run."""
    size = config.flow.teacher_pool
    if size == 0:
        return None
    if path.exists():
        pool = load_file(path)
        if len(pool["sigma"]) == size:
            return pool
    batches = math.ceil(size / config.flow.batch_size)
    parts = [flow_batch(tokenizer, latents, scaling, scenes, config, 1, step, draw, teacher)
             for step in tqdm(range(batches), desc="teacher pool", mininterval=5)]
    pool = {key: torch.cat([part[i] for part in parts])[:size].contiguous() for i, key in enumerate(KEYS)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(pool, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    return pool


def pool_batch(pool: dict[str, torch.Tensor], config, step: int) -> tuple[torch.Tensor, ...]:
    """Step `step`'s batch from the pool, drawn from (seed, step) only."""
    rows = np.random.default_rng([config.seed + 12, step]).integers(0, len(pool["sigma"]), config.flow.batch_size)
    picked = torch.from_numpy(rows)
    return tuple(pool[key][picked] for key in KEYS)
