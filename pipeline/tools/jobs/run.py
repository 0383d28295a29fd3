"""Running a job: every line checked before any weights load (plan.py), the pending images run by the one runner
(runner.py) and each written as line####-seed#.png beside its YAML. The manifest and the report are written again at
the end, and also when the job stops early (Ctrl-C, SIGTERM, an error), so every image finished is listed."""

from __future__ import annotations

import logging
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Iterator, Optional

from omegaconf import DictConfig
from PIL import Image

from pipeline.run.generate import Plan, image_config, image_parameters
from pipeline.run.outputs import save_named
from pipeline.run.processes import is_main, wait_for_all
from pipeline.tools.report_page import write_report
from pipeline.tools.jobs.manifest import check_manifest, save_times, write_manifest
from pipeline.tools.jobs.plan import Job, Unit, plan_job
from pipeline.tools.jobs.index_page import job_page
from pipeline.tools.jobs.runner import Progress, Work, run_lines

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
    work = [_work(job, unit, done) for unit in job.units if set(unit.names()) - done]
    seconds: dict[str, float] = {}
    try:
        with closing(run_lines(work, _save, Progress("job", "image", shown=progress))) as results:
            for result in results:
                seconds[result.name] = round(result.seconds, 4)
                if result.path is not None:
                    yield result.path
    except BaseException:  # stopped early: list what is finished before the interruption or error goes on
        save_times(folder, seconds)
        if is_main():
            _record(job, source)
        raise
    save_times(folder, seconds)
    wait_for_all()
    if is_main():
        _record(job, source)


def _work(job: Job, unit: Unit, done: set[str]) -> Work:
    """A unit's images not yet written, as the runner's work (their YAML names the unit's whole batch)."""
    pending = [(seed, name) for seed, name in zip(unit.seeds, unit.names()) if name not in done]
    return Work(unit.line, [seed for seed, _ in pending], [name for _, name in pending], len(unit.seeds),
                partial(job.line_plan, unit))


def _save(image: Image.Image, plan: Plan, seed: int, name: str, batch: int) -> Optional[Path]:
    """A job image beside its YAML under its own name in the job's folder, unless it is there already."""
    return save_named(image, plan.output_dir, name, image_parameters(plan, seed), image_config(plan, seed, batch))


def _record(job: Job, source: str) -> None:
    """Write the manifest and the report of the images in the folder now."""
    manifest = write_manifest(job.folder, source, job.identity, job.units[-1].line, job.names)
    write_report(job.folder, job_page(job, manifest, source), replace=True)
