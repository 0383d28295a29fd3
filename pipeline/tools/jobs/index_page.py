"""A job's index.html: one sortable row per image (its line, seed, settings, time and the scores the scorers show on
a job's page, such as the shapes world's adherence by pixels), rewritten after every run of the job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from pipeline.tools.report_page import page
from pipeline.tools.scoring import image_scores, page_columns
from pipeline.engine.schedulers import SCHEDULERS

if TYPE_CHECKING:
    from pipeline.tools.jobs.plan import Job, Unit

COLUMNS = ("image", "line", "seed", "prompt", "negative prompt", "sampler", "steps", "cfg", "size", "status",
           "seconds")


def _row(job: Job, unit: Unit, seed: int, name: str, seconds: dict[str, float], shown: list[str]) -> dict[str, Any]:
    """One image's row: its settings and, once written, its time and the `shown` scores."""
    plan, png = unit.plan, job.folder / f"{name}.png"
    cfg, done, prompt = plan.cfg, png.is_file(), unit.text("prompt")
    row = {"image": png.name if done else None, "line": unit.line, "seed": seed,
           "prompt": prompt, "negative prompt": unit.text("negative_prompt"),
           "sampler": SCHEDULERS[plan.scheduler].label, "steps": cfg.steps, "cfg": cfg.guidance_scale,
           "size": f"{plan.width}x{plan.height}", "status": "done" if done else "pending", "seconds": seconds.get(name)}
    if done:
        with Image.open(png) as image:
            scores = image_scores(image.convert("RGB"), prompt)
        row.update({key: scores[key] for key in shown if key in scores})
    return row


def job_page(job: Job, manifest: dict, source: str) -> str:
    """The page's HTML (empty columns left out)."""
    seconds, shown = manifest.get("seconds", {}), page_columns()
    rows = [_row(job, unit, seed, name, seconds, shown) for unit in job.units
            for seed, name in zip(unit.seeds, unit.names())]
    columns = [c for c in (*COLUMNS, *shown) if c != "image" and any(row.get(c) not in (None, "") for row in rows)]
    header = {"job": source, "folder": str(job.folder), "lines": manifest["lines"],
              "images": f"{manifest['done']} of {manifest['images']} done"}
    return page(f"Job {job.folder.name}", header, [], columns, rows)
