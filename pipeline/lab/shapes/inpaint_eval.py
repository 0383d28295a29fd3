"""Inpainting on the shapes world, scored by pixels: a centre shape repainted as the prompt asks. Inside the mask
the prompt's colour and shape must appear; outside it the source is kept; the seam is the colour step across the
mask's edge where the source is plain background on both sides."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pipeline.run.generate import check, generate_images, load
from pipeline.lab.shapes.evaluate import PromptSpec, accuracy, eval_specs, score_image
from pipeline.lab.shapes.world import COLOURS, IMAGE_SIZE, SHAPES, SIZES, VARIATION, Scene, Shape, Variation, render


def mask_box(variation: Variation = VARIATION, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """The repainted square's first and past-the-end pixel: wide enough that a large centre shape, moved and grown
    by the world's jitter, fits inside, so that a shape the model places as it learnt is not cut by the mask's edge
    (a cut shape is a step across the edge that is not a seam)."""
    half = int(np.ceil(SIZES["large"] + variation.radius + variation.position))
    return size // 2 - half, size // 2 + half


def source_scene(spec: PromptSpec) -> Scene:
    """The image to repaint: a large centre shape of another colour and kind on the prompt's background."""
    names = [c for c in COLOURS if c not in (spec.colour, spec.background)]
    kind = SHAPES[(SHAPES.index(spec.shape) + 1) % len(SHAPES)]
    return Scene(spec.background, (Shape(kind, names[0], "large", "centre", 32.0, 32.0, 16.0, 1.0),))


def centre_mask(size: int = IMAGE_SIZE) -> np.ndarray:
    """The boolean mask, True = repaint."""
    first, past = mask_box(size=size)
    mask = np.zeros((size, size), bool)
    mask[first:past, first:past] = True
    return mask


def seam_step(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute RGB step between each pixel just inside the mask's edge and its neighbour just outside
    (for a mask clear of the image's border: the neighbours are found by rolling)."""
    rgb = image.astype(np.float32)
    steps = []
    for axis in (0, 1):
        for shift in (1, -1):
            edge = mask & ~np.roll(mask, shift, axis=axis)  # inside, with the neighbour `shift` away outside
            steps.append(np.abs(rgb[edge] - np.roll(rgb, shift, axis=axis)[edge]).mean(axis=-1))
    return float(np.concatenate(steps).mean())


def outside_change(image: np.ndarray, source: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute RGB change (0-255) outside the mask."""
    return float(np.abs(image.astype(np.float32) - source.astype(np.float32))[~mask].mean())


def evaluate_inpaint(cfg: DictConfig, seeds_per_prompt: int = 1, specs: list[PromptSpec] | None = None) -> dict:
    """Scores of the inpaint config on the 18 colour x shape prompts: adherence (whole image, as the repainted
    shape is the only one), change outside the mask without the paste-back, and the seam with it."""
    mask = centre_mask()
    with tempfile.TemporaryDirectory() as folder:
        mask_path = Path(folder) / "mask.png"
        Image.fromarray((mask * 255).astype(np.uint8)).save(mask_path)
        base = OmegaConf.merge(cfg, {"mask": str(mask_path), "image": str(mask_path)})
        plan = check(base)
        components = load(plan)
        scores, seams, changes = [], [], []
        for i, spec in enumerate(eval_specs() if specs is None else specs):
            source = render(source_scene(spec))[0]
            image_path = Path(folder) / f"source-{i}.png"
            Image.fromarray(source).save(image_path)
            run = OmegaConf.merge(base, {"prompt": spec.prompt, "image": str(image_path)})
            seeds = [int(cfg.seed) + k for k in range(seeds_per_prompt)]
            kept = generate_images(components, run, seeds, plan.height, plan.width, progress=False)
            free = generate_images(components, OmegaConf.merge(run, {"keep_unmasked": False}), seeds,
                                   plan.height, plan.width, progress=False)
            for with_paste, without in zip(kept, free):
                scores.append(score_image(with_paste, spec))
                seams.append(seam_step(np.asarray(with_paste), mask))
                changes.append(outside_change(np.asarray(without), source, mask))
    return {"model": cfg.model.path, "unet_channels": components.unet.config.in_channels,
            "images": len(scores), "inside_mask": accuracy(scores),
            "colour_and_shape": 100.0 * float(np.mean([s["colour"] and s["shape"] for s in scores])),
            "outside_change_without_paste_back": float(np.mean(changes)),
            "seam_step": float(np.mean(seams))}
