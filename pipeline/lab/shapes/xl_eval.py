"""The SDXL-format sibling's micro-conditioning, measured by pixels through the normal pipeline: the caption grammar
at the default crop (0, 0), and what a crop offset does to the drawn scene. Trained as SDXL's data was (xl_data.py),
a crop at (top, left) of an original `ORIGINAL` pixels a side shows the scene scaled by ORIGINAL / 64 and moved up
and left by the offset (Podell et al. 2023, section 2.2, figure 5): the shape's centre should move by -offset."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from pipeline.lab.shapes.adherence import generate_for, headline, prepared, score_grammar
from pipeline.lab.shapes.evaluate import nearest_colour, pixels
from pipeline.lab.shapes.grammar import grammar_prompts
from pipeline.lab.shapes.scene_score import colour_region

ORIGINAL = 96  # the largest original the recipe draws (xl.largest): offsets 0..32 stay inside it
OFFSETS = ((0, 8), (0, 16), (0, 32), (8, 0), (16, 0), (32, 0), (16, 16), (32, 32))  # (top, left), as SDXL's ids
FOLLOWS_PX = 4.0  # a shift within this many pixels of -offset on both axes counts as following the crop


def shape_centre(image, colour: str) -> tuple[float, float] | None:
    """The centre (x, y) of the largest region of the shape's colour, or None when none is drawn."""
    region = colour_region(nearest_colour(pixels(image)), colour)
    return None if region is None else (region.cx, region.cy)


def crop_shifts(components, cfg: DictConfig, seeds: list[int], prompts=None, offsets=OFFSETS) -> dict:
    """For one-shape prompts at every size and place, drawn at original (ORIGINAL, ORIGINAL): the shape's centre at
    each crop offset against its centre at crop (0, 0) with the same seed; per offset the mean shift (x, y), the
    expected one (-left, -top), the share of images whose shape is still drawn and the share that follows."""
    prompts = [p for p in grammar_prompts() if p.scene.relation is None][:10] if prompts is None else prompts

    def centres(prompt, crop: tuple[int, int]) -> list[tuple[float, float] | None]:
        images = generate_for(components, cfg, prompt.prompt, seeds, original_size=[ORIGINAL, ORIGINAL],
                              crops_coords_top_left=list(crop))
        return [shape_centre(image, prompt.scene.shapes[0].colour) for image in images]

    plain = {prompt.prompt: centres(prompt, (0, 0)) for prompt in prompts}
    rows = {}
    for top, left in tqdm(offsets, desc="crop offsets", leave=False):
        shifts, found, follows, total = [], 0, 0, 0
        for prompt in prompts:
            for before, after in zip(plain[prompt.prompt], centres(prompt, (top, left))):
                total += 1
                if before is None or after is None:
                    continue
                found += 1
                shift = (after[0] - before[0], after[1] - before[1])
                shifts.append(shift)
                follows += abs(shift[0] + left) <= FOLLOWS_PX and abs(shift[1] + top) <= FOLLOWS_PX
        mean = np.mean(shifts, axis=0) if shifts else (float("nan"), float("nan"))
        rows[f"{top},{left}"] = {"expected_px": [-left, -top], "mean_shift_px": [round(float(v), 1) for v in mean],
                                 "drawn": round(100.0 * found / total, 1),
                                 "follows": round(100.0 * follows / total, 1)}
    return {"original_size": ORIGINAL, "images_per_offset": len(prompts) * len(seeds),
            "follows_within_px": FOLLOWS_PX, "offsets": rows}


def evaluate_xl(cfg: DictConfig, seeds_per_prompt: int = 3) -> dict:
    """The caption grammar at crop (0, 0) (original = target = the output's size, the config's default) and the
    crop offsets' shifts, on components loaded once."""
    plan, components, cfg, seeds = prepared(cfg, seeds_per_prompt)
    return {"model": cfg.model.path,
            "settings": {"scheduler": cfg.scheduler.name, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale,
                         "dtype": plan.precision.name, "seeds_per_prompt": seeds_per_prompt},
            "grammar_crop_0_0": headline(score_grammar(components, cfg, seeds, grammar_prompts())),
            "crops": crop_shifts(components, cfg, seeds[:2])}
