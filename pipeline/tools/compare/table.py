"""The comparison's table: one row per cell, with shapes-world scores when the prompt is a scoring prompt."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from PIL import Image

from pipeline.run.generate import Plan
from pipeline.tools.run_folder import save_text
from pipeline.lab.shapes.caption_parse import adherence as adherence_scores
from pipeline.lab.shapes.evaluate import PromptSpec, colour_share, score_image
from pipeline.lab.shapes.world import COLOURS, SHAPES

if TYPE_CHECKING:
    from pipeline.tools.compare.runner import Cell

COLUMNS = (
    "cell", "row", "column", "scheduler", "label", "options", "steps", "guidance", "x", "y", "z", "status", "error",
    "seconds", "unet_calls", "seconds_per_unet_call", "image", "adherence", "missed", "score_colour",
    "score_background", "score_shape", "colour_share",
)


def spec_for_prompt(prompt: str) -> Optional[PromptSpec]:
    """The evaluation spec whose prompt this is ('a large red circle in the centre, blue background'), or None."""
    for colour in COLOURS:
        for shape in SHAPES:
            for background in COLOURS:
                spec = PromptSpec(colour, shape, background)
                if background != colour and spec.prompt == prompt.strip():
                    return spec
    return None


def cell_scores(image: Image.Image, spec: Optional[PromptSpec], prompt: str = "") -> dict[str, Any]:
    """Adherence to whatever the prompt names when it is a caption of the shapes world (the share of its attributes
    the pixels show, and which missed), plus, for an evaluation prompt, pipeline/lab/shapes/evaluate.py's scores and the
    share of the asked-for colour."""
    named = adherence_scores(image, prompt) if prompt else {}
    scores = adherence_fields(named)
    if spec is not None:
        scores.update({f"score_{key}": value for key, value in score_image(image, spec).items()})
        scores["colour_share"] = round(colour_share(image, spec.colour), 4)
    return scores


def adherence_fields(named: dict[str, bool]) -> dict[str, Any]:
    """'adherence' (share of the named attributes shown) and 'missed' (their names), or nothing to report."""
    if not named:
        return {}
    return {"adherence": round(sum(named.values()) / len(named), 3),
            "missed": " ".join(key for key, ok in named.items() if not ok)}


def cell_row(index: int, cell: Cell) -> dict[str, Any]:
    """A cell as a table row; timing and scores are None when the cell did not finish."""
    per_call = cell.seconds / cell.unet_calls if cell.seconds is not None and cell.unet_calls else None
    row = {
        "cell": index, "row": cell.row, "column": cell.column, "scheduler": cell.entry.key,
        "label": cell.entry.label.replace("\n", " "), "options": cell.entry.options, "steps": cell.steps,
        "guidance": cell.guidance, "x": cell.column_label.replace("\n", " "), "y": cell.row_label.replace("\n", " "),
        "z": cell.z_label.replace("\n", " "), "status": cell.status, "error": cell.error,
        "seconds": None if cell.seconds is None else round(cell.seconds, 4), "unet_calls": cell.unet_calls,
        "seconds_per_unet_call": None if per_call is None else round(per_call, 5),
        "image": None if cell.image is None else str(cell.image),
    }
    return {**row, **{key: cell.scores.get(key) for key in COLUMNS[len(row):]}}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with a header; options as JSON, missing values empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if k == "options" else "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_tables(plan: Plan, cells: list[Cell], folder: Path) -> dict[str, Path]:
    """cells.csv and cells.json (the JSON also names the prompt, seed, model and size) in the run folder."""
    rows = [cell_row(i, cell) for i, cell in enumerate(cells)]
    cfg = plan.cfg
    header = {
        "prompt": cfg.prompt, "negative_prompt": cfg.negative_prompt, "seed": cfg.seed, "model": cfg.model.path,
        "height": plan.height, "width": plan.width,
    }
    return {
        "csv": save_text(to_csv(rows), folder, "cells.csv"),
        "json": save_text(json.dumps({**header, "cells": rows}, indent=2) + "\n", folder, "cells.json"),
    }
