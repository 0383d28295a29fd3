"""The comparison's table: one row per cell, with the scores of every scorer that knows the prompt's kind
(pipeline/tools/scoring.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pipeline.run.generate import Plan
from pipeline.tools.compare.cells import Cell
from pipeline.tools.run_folder import save_text
from pipeline.tools.scoring import score_columns

CELL_COLUMNS = (
    "cell", "row", "column", "scheduler", "label", "options", "steps", "guidance", "x", "y", "z", "status", "error",
    "seconds", "unet_calls", "seconds_per_unet_call", "image",
)


def columns() -> list[str]:
    """The table's columns: the cell's own, then every scorer's."""
    return [*CELL_COLUMNS, *score_columns()]


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
    return {**row, **{key: cell.scores.get(key) for key in score_columns()}}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with a header; options as JSON, missing values empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(), lineterminator="\n")
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
