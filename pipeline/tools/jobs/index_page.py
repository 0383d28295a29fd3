"""A job's index.html: one sortable row per image (its line, seed, settings, time and, for captions of the shapes
world, adherence by pixels), rewritten after every run of the job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from pipeline.tools.compare.table import adherence_fields
from pipeline.tools.report_page import page
from pipeline.engine.schedulers import SCHEDULERS
from pipeline.lab.shapes.caption_parse import adherence

if TYPE_CHECKING:
    from pipeline.tools.jobs.plan import Job, Unit

COLUMNS = ("image", "line", "seed", "prompt", "negative prompt", "sampler", "steps", "cfg", "size", "status",
           "seconds", "adherence", "missed")


def _row(job: Job, unit: Unit, seed: int, name: str, seconds: dict[str, float]) -> dict[str, Any]:
    """One image's row: its settings and, once written, its time and adherence."""
    plan, png = unit.plan, job.folder / f"{name}.png"
    cfg, done, prompt = plan.cfg, png.is_file(), unit.text("prompt")
    row = {"image": png.name if done else None, "line": unit.line, "seed": seed,
           "prompt": prompt, "negative prompt": unit.text("negative_prompt"),
           "sampler": SCHEDULERS[plan.scheduler].label, "steps": cfg.steps, "cfg": cfg.guidance_scale,
           "size": f"{plan.width}x{plan.height}", "status": "done" if done else "pending", "seconds": seconds.get(name)}
    if done:
        with Image.open(png) as image:
            row.update(adherence_fields(adherence(image.convert("RGB"), prompt)))
    return row


def job_page(job: Job, manifest: dict, source: str) -> str:
    """The page's HTML (empty columns left out)."""
    seconds = manifest.get("seconds", {})
    rows = [_row(job, unit, seed, name, seconds) for unit in job.units for seed, name in zip(unit.seeds, unit.names())]
    columns = [c for c in COLUMNS if c != "image" and any(row.get(c) not in (None, "") for row in rows)]
    header = {"job": source, "folder": str(job.folder), "lines": manifest["lines"],
              "images": f"{manifest['done']} of {manifest['images']} done"}
    return page(f"Job {job.folder.name}", header, [], columns, rows)
