"""Running a job: every line checked before any weights load, the pending images split among processes, each
generated on the one `generate_images` path and written as line####-seed#.png beside its YAML."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig
from tqdm.auto import tqdm

from .. import config
from ..components import Components
from ..errors import UserError
from ..generate import Plan, check, generate_images, image_config, image_parameters, load, loaded_with
from ..interrupts import held
from ..outputs import save_named
from ..processes import is_main, my_share, process_device, wait_for_all
from ..text import warn_about_prompt
from . import JOB_KEYS, plain
from .lines import job_lines
from ..report import write_report
from .manifest import check_manifest, identity, save_times, write_manifest
from .report import job_page

log = logging.getLogger("pipeline")


def image_name(line: int, seed: int) -> str:
    """A job image's file stem: its line (from 1) and seed."""
    return f"line{line:04d}-seed{seed}"


@dataclass
class Unit:
    """One batch of one line: the unit of work a process takes."""

    line: int
    plan: Plan
    seeds: list[int]

    def names(self) -> list[str]:
        return [image_name(self.line, seed) for seed in self.seeds]


@dataclass
class Job:
    """A checked job: its units in order, and every image's name and resolved config."""

    units: list[Unit]
    images: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.units[0].plan.output_dir


def _line_config(base: DictConfig, where: str, overrides: dict) -> DictConfig:
    """The line's config: the job's, with the line's keys; keys a line may not set are refused."""
    for key in (*JOB_KEYS, "output_dir"):
        if key in overrides:
            raise UserError(f"{where} sets {key}, which only the job itself may set.")
    cfg = config._merge(base, overrides, where)
    if cfg.seed < 0:
        raise UserError(f"{where}: seed {cfg.seed} means a random seed, which a job cannot resume with; give a "
                        "fixed seed.")
    return cfg


def plan_job(cfg: DictConfig) -> Job:
    """Check every line (as a run of its own would be checked) before any weights load."""
    base, units, images = plain(cfg), [], {}
    for line, (where, overrides) in enumerate(job_lines(cfg), start=1):
        line_cfg = _line_config(base, where, overrides)
        try:
            plan = check(line_cfg)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
        seeds = plan.seeds
        for start in range(0, len(seeds), line_cfg.batch_size):
            unit = Unit(line, plan, seeds[start : start + line_cfg.batch_size])
            units.append(unit)
            for seed, name in zip(unit.seeds, unit.names()):
                images[name] = image_config(plan, seed, len(unit.seeds))
    return Job(units, images)


def run_job(cfg: DictConfig, source: str = "", progress: bool = True) -> Iterator[Path]:
    """Run (or resume) a job, yielding each image's path as soon as it is written."""
    job = plan_job(cfg)
    folder, job_id, names = job.folder, identity(job.images), list(job.images)
    check_manifest(folder, job_id)
    if is_main():
        write_manifest(folder, source, job_id, job.units[-1].line, names)
    done = {name for name in names if (folder / f"{name}.png").is_file()}
    wait_for_all()  # every process has seen the same images done before any process writes more (same shares)
    if done:
        log.info("%d of %d images of this job are already in %s; they are skipped.", len(done), len(names), folder)
    pending = [unit for unit in job.units if set(unit.names()) - done]
    mine = my_share(pending)
    bar = tqdm(total=sum(len(set(u.names()) - done) for u in mine), desc="job", unit="image",
               disable=not (progress and is_main()))
    loaded, components, warned, seconds = "", None, set(), {}
    try:
        for unit in mine:
            if loaded_with(unit.plan) != loaded:
                loaded = loaded_with(unit.plan)
                components = load(replace(unit.plan, device=process_device(unit.plan.device)))
            if unit.line not in warned:
                warned.add(unit.line)
                _warn(components, unit.plan.cfg)
            yield from _run_unit(components, unit, done, bar, seconds)
    finally:
        bar.close()
        save_times(folder, seconds)
    wait_for_all()
    if is_main():
        manifest = write_manifest(folder, source, job_id, job.units[-1].line, names)
        write_report(folder, job_page(job, manifest, source), replace=True)


def _warn(components: Components, cfg: DictConfig) -> None:
    warn_about_prompt(components.tokenizer, cfg.prompt, "prompt", cfg.prompt_syntax)
    warn_about_prompt(components.tokenizer, cfg.negative_prompt, "negative_prompt", cfg.prompt_syntax)


def _run_unit(
    components: Components, unit: Unit, done: set[str], bar: tqdm, seconds: dict[str, float]
) -> Iterator[Path]:
    """Generate a unit's images not yet written, and write each under its name, timing them."""
    plan = unit.plan
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
