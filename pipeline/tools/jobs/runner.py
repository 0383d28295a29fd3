"""The one multi-image runner, for jobs and comparisons alike: the work (batches of lines, each line with its own
checked plan) split among processes, the components loaded again only when a line needs others (`loaded_with`), each
line's prompt and negative prompt checked against the tokenizer, every batch generated on the one `generate_images`
path (timed, its UNet calls counted) and each image saved under its name, handed on before an interrupt is raised."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

from omegaconf import DictConfig
from PIL import Image
from tqdm.auto import tqdm

from pipeline.common.interrupts import held
from pipeline.models.components import Components
from pipeline.run.generate import Plan, generate_images, load, loaded_with
from pipeline.run.processes import gathered, is_main, my_share, process_count, process_device
from pipeline.text.encoding import warn_about_prompt

log = logging.getLogger("pipeline")

# Saves one image (image, the line's plan, seed, name, the batch size its YAML names): its path, or None when an
# image of that name was there already.
Save = Callable[[Image.Image, Plan, int, str, int], Optional[Path]]


@dataclass
class Work:
    """One batch of one line: the line's key, the seeds to generate, the names their images are saved under, the
    batch size their YAML names, and the line's plan (made when the batch runs: a job merges a line's config late)."""

    line: int
    seeds: list[int]
    names: list[str]
    batch: int
    plan: Callable[[], Plan]


@dataclass
class Result:
    """What became of one image: 'ok' with its file (None when it was there already) and picture, or 'error' and
    why; its share of its batch's seconds and the batch's UNet calls."""

    line: int
    name: str
    seed: int
    status: str = "ok"
    error: str = ""
    seconds: Optional[float] = None
    unet_calls: int = 0
    path: Optional[Path] = None
    image: Optional[Image.Image] = None


@dataclass(frozen=True)
class Progress:
    """How the progress bar reads (the main process's only): its name, what it counts, whether it names the image
    being made, and whether it is shown at all."""

    desc: str
    unit: str
    names: bool = False
    shown: bool = True


def run_lines(work: list[Work], save: Save, progress: Progress, keep_going: bool = False,
              start: Optional[Callable[[], None]] = None) -> Iterator[Result]:
    """Run this process's share of the work, yielding each image's result as soon as it is saved.

    With `keep_going` a batch that fails is a result per image ('error' and the first line of why) and the others
    go on; without, the failure is raised. `start` runs once, after the first load and before the first image (at
    once when this process has no share): a comparison makes its folder then.
    """
    mine = my_share(work)
    bar = tqdm(total=sum(len(item.seeds) for item in mine), desc=progress.desc, unit=progress.unit,
               disable=not (progress.shown and is_main()))
    loaded, components, warned = "", None, set()
    try:
        if not mine and start is not None:
            start()
        for index, item in enumerate(mine):
            plan = item.plan()
            if loaded_with(plan) != loaded:
                loaded = loaded_with(plan)
                components = load(replace(plan, device=process_device(plan.device)))
            _warn(components, plan.cfg, loaded, warned)
            if index == 0 and start is not None:
                start()
            if progress.names:
                bar.set_postfix_str(item.names[0])
            yield from _run_batch(components, plan, item, save, bar, keep_going)
    finally:
        bar.close()


def _warn(components: Components, cfg: DictConfig, loaded: str, warned: set) -> None:
    """Name the words of the line's prompt and negative prompt that will be dropped or are unknown, in its own
    prompt_syntax; once for the same texts on the same components."""
    key = (loaded, cfg.prompt, cfg.negative_prompt, cfg.prompt_syntax)
    if key in warned:
        return
    warned.add(key)
    warn_about_prompt(components.tokenizer, cfg.prompt, "prompt", cfg.prompt_syntax)
    warn_about_prompt(components.tokenizer, cfg.negative_prompt, "negative_prompt", cfg.prompt_syntax)


def _run_batch(components: Components, plan: Plan, item: Work, save: Save, bar: tqdm,
               keep_going: bool) -> Iterator[Result]:
    """Generate one batch, timing it and counting its UNet calls, and save each image (the path handed on while an
    interrupt waits)."""
    calls: list[int] = []
    started = time.perf_counter()
    try:
        images = generate_images(components, plan.cfg, item.seeds, plan.height, plan.width, progress=False,
                                 callback=lambda i, t, latents: calls.append(i))
    except Exception as err:  # a comparison's cells are independent: one failing must not stop the others
        if not keep_going:
            raise
        reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        for seed, name in zip(item.seeds, item.names):
            bar.update(1)
            yield Result(item.line, name, seed, "error", reason)
        return
    each = (time.perf_counter() - started) / max(len(item.seeds), 1)
    for seed, name, image in zip(item.seeds, item.names, images):
        with held():
            path = save(image, plan, seed, name, item.batch)
            bar.update(1)
            yield Result(item.line, name, seed, seconds=each, unet_calls=len(calls), path=path, image=image)


def gathered_results(results: list[Result]) -> list[Result]:
    """Every process's results in process order (alone, its own; from the others without their pictures, which
    are in their files)."""
    if process_count() == 1:
        return list(results)
    return gathered([replace(result, image=None) for result in results])
