"""Running a job: every line checked before any weights load (plan.py), the pending images split among processes,
each generated on the one `generate_images` path and written as line####-seed#.png beside its YAML. The manifest and
the report are written again at the end, and also when the job stops early (Ctrl-C, SIGTERM, an error), so every
image finished is listed."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig
from tqdm.auto import tqdm

from pipeline.models.components import Components
from pipeline.run.generate import Plan, generate_images, image_config, image_parameters, load, loaded_with
from pipeline.common.interrupts import held
from pipeline.run.outputs import save_named
from pipeline.run.processes import is_main, my_share, process_device, wait_for_all
from pipeline.tools.report_page import write_report
from pipeline.text.encoding import warn_about_prompt
from pipeline.tools.jobs.manifest import check_manifest, save_times, write_manifest
from pipeline.tools.jobs.plan import Job, Unit, image_name, plan_job
from pipeline.tools.jobs.index_page import job_page

log = logging.getLogger("pipeline")


def run_job(cfg: DictConfig, source: str = "", progress: bool = True) -> Iterator[Path]:
    """Run (or resume) a job, yielding each image's path as soon as it is written."""
    job = plan_job(cfg, progress)
    folder, lines = job.folder, job.units[-1].line
    check_manifest(folder, job.identity)
    if is_main():
        write_manifest(folder, source, job.identity, lines, job.names)
    done = {name for name in job.names if (folder / f"{name}.png").is_file()}
    wait_for_all()  # every process has seen the same images done before any process writes more (same shares)
    if done:
        log.info("%d of %d images of this job are already in %s; they are skipped.", len(done), len(job.names), folder)
    mine = my_share([unit for unit in job.units if set(unit.names()) - done])
    bar = tqdm(total=sum(len(set(u.names()) - done) for u in mine), desc="job", unit="image",
               disable=not (progress and is_main()))
    loaded, components, warned, seconds = "", None, set(), {}
    try:
        for unit in mine:
            plan = job.line_plan(unit)
            if loaded_with(plan) != loaded:
                loaded = loaded_with(plan)
                components = load(replace(plan, device=process_device(plan.device)))
            if unit.line not in warned:
                warned.add(unit.line)
                _warn(components, plan.cfg)
            yield from _run_unit(components, plan, unit, done, bar, seconds)
    except BaseException:  # stopped early: list what is finished before the interruption or error goes on
        _close(bar, folder, seconds)
        if is_main():
            _record(job, source)
        raise
    _close(bar, folder, seconds)
    wait_for_all()
    if is_main():
        _record(job, source)


def _close(bar: tqdm, folder: Path, seconds: dict[str, float]) -> None:
    bar.close()
    save_times(folder, seconds)


def _record(job: Job, source: str) -> None:
    """Write the manifest and the report of the images in the folder now."""
    manifest = write_manifest(job.folder, source, job.identity, job.units[-1].line, job.names)
    write_report(job.folder, job_page(job, manifest, source), replace=True)


def _warn(components: Components, cfg: DictConfig) -> None:
    warn_about_prompt(components.tokenizer, cfg.prompt, "prompt", cfg.prompt_syntax)
    warn_about_prompt(components.tokenizer, cfg.negative_prompt, "negative_prompt", cfg.prompt_syntax)


def _run_unit(
    components: Components, plan: Plan, unit: Unit, done: set[str], bar: tqdm, seconds: dict[str, float]
) -> Iterator[Path]:
    """Generate a unit's images not yet written, and write each under its name, timing them."""
    seeds = [seed for seed, name in zip(unit.seeds, unit.names()) if name not in done]
    started = time.perf_counter()
    images = generate_images(components, plan.cfg, seeds, plan.height, plan.width, progress=False)
    each = (time.perf_counter() - started) / max(len(seeds), 1)
    for seed in seeds:
        seconds[image_name(unit.line, seed)] = round(each, 4)
    for seed, image in zip(seeds, images):
        with held():
            path = save_named(image, plan.output_dir, image_name(unit.line, seed), image_parameters(plan, seed),
                              image_config(plan, seed, len(unit.seeds)))
            bar.update(1)
            if path is not None:
                yield path
