"""Comparisons: one prompt and seed over schedulers x steps (x guidance), or over any keys (compare.axes: X/Y/Z),
the same noise in every cell unless an axis changes the seed. A comparison is a job whose lines are its cells, run
by the one runner (pipeline/tools/jobs/runner.py) into the comparison's own folder; its grids, tables and report are
drawn from the runner's results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig
from PIL import Image

from pipeline.run.config import to_yaml
from pipeline.run.generate import Plan, image_config, image_parameters
from pipeline.run.outputs import save_image
from pipeline.run.processes import from_main, is_main
from pipeline.tools.compare.cells import Cell, column_labels, plan_cells
from pipeline.tools.compare.config import SECTION
from pipeline.tools.compare.table import cell_row, write_tables
from pipeline.tools.drawing import caption, grid
from pipeline.tools.jobs.runner import Progress, Result, Work, gathered_results, run_lines
from pipeline.tools.report_page import page, write_report
from pipeline.tools.run_folder import new_run_folder, save_png, save_text
from pipeline.tools.scoring import image_scores, score_columns

@dataclass
class Comparison:
    """A finished comparison: its run folder, its cells and the files written."""

    folder: Path
    cells: list[Cell]
    files: dict[str, Path]


@dataclass
class _RunFolder:
    """The comparison's numbered folder, made by the main process (with its config.yaml) just before the first cell
    runs and known to every process, and the cells' images saved in it as NNNNN-stem.png."""

    cfg: DictConfig
    output_dir: Path
    folder: Optional[Path] = None

    def make(self) -> None:
        """Make the folder (main process) and share its name with the others."""
        folder = new_run_folder(self.output_dir, SECTION) if is_main() else None
        if folder is not None:
            save_text(to_yaml(self.cfg), folder, "config.yaml")
        self.folder = from_main(folder)

    def save(self, image: Image.Image, plan: Plan, seed: int, name: str, batch: int) -> Path:
        """One cell's PNG and YAML under the next free number."""
        return save_image(image, self.folder, name, image_parameters(plan, seed), image_config(plan, seed, batch))


def run_comparison(cfg: DictConfig, progress: bool = True) -> Comparison:
    """Check every cell, run them as the lines of a job (each process its share, loading only when a cell needs
    other components), then write grids and tables from the results; a cell that fails is an error cell."""
    plan, cells = plan_cells(cfg)
    work = [_work(index, cell, cell.line_plan(plan)) for index, cell in enumerate(cells)]
    output, results = _RunFolder(cfg, plan.output_dir), []
    shown = Progress("compare", "cell", names=True, shown=progress)
    try:
        for result in run_lines(work, output.save, shown, keep_going=True, start=output.make):
            results.append(result)
    finally:
        images = _fill(cells, gathered_results(results))
        files = _write_results(plan, cells, images, output.folder) if output.folder is not None and is_main() else {}
    return Comparison(output.folder, cells, files)


def _work(index: int, cell: Cell, plan: Plan) -> Work:
    """A cell as a line of the job: one image from the cell's seed, named by its stem."""
    return Work(index, [plan.cfg.seed], [cell.stem], 1, lambda: plan)


def _fill(cells: list[Cell], results: list[Result]) -> dict[int, Image.Image]:
    """Each cell's result, and the pictures of the cells that finished (read back from their PNGs when another
    process made them)."""
    images = {}
    for result in results:
        cell = cells[result.line]
        cell.status, cell.error, cell.image = result.status, result.error, result.path
        if result.status == "ok":
            cell.seconds, cell.unet_calls = result.seconds, result.unet_calls
        if result.image is not None:
            images[result.line] = result.image
        elif result.path is not None:
            with Image.open(result.path) as picture:
                images[result.line] = picture.convert("RGB")
    return images


def grid_picture(plan: Plan, cells: list[Cell], images: dict[int, Image.Image], z: int = 0) -> Image.Image:
    """The labelled grid of one Z value: schedulers (or Y values) down, steps (or X values) across, failed cells as
    grey tiles."""
    chosen = [(index, cell) for index, cell in enumerate(cells) if cell.z == z]
    rows = max(c.row for _, c in chosen) + 1
    tiles: list[list[Image.Image | str]] = [[] for _ in range(rows)]
    labels = [""] * rows
    for index, cell in chosen:
        tiles[cell.row].append(images.get(index, cell.status))
        labels[cell.row] = cell.row_label
    sheet = grid(tiles, column_labels(cells), labels)
    cfg = plan.cfg
    scales = {c.guidance for _, c in chosen}
    guidance = f"  cfg {scales.pop():g}" if len(scales) == 1 else ""
    where = f"  {chosen[0][1].z_label.replace(chr(10), ' ')}" if chosen[0][1].z_label else ""
    return caption(sheet, f"{cfg.prompt!r}  seed {cfg.seed}{guidance}  {Path(cfg.model.path).name}{where}")


def _write_results(plan: Plan, cells: list[Cell], images: dict[int, Image.Image], folder: Path) -> dict[str, Path]:
    """The cells' scores, then the grids (one per Z value), the tables and the report."""
    for index, image in images.items():
        cells[index].scores = image_scores(image, cells[index].cfg.prompt)
    files = {"config": folder / "config.yaml"}
    for z in sorted({cell.z for cell in cells}):
        name = "grid.png" if z == 0 and all(c.z == 0 for c in cells) else f"grid-z{z + 1}.png"
        files[name.removesuffix(".png")] = save_png(grid_picture(plan, cells, images, z), folder, name)
    files.update(write_tables(plan, cells, folder))
    files["report"] = write_report(folder, comparison_page(plan, cells, files))
    return files


REPORT_COLUMNS = ("cell", "x", "y", "z", "label", "steps", "guidance", "status", "error", "seconds", "unet_calls",
                  "seconds_per_unet_call")


def comparison_page(plan: Plan, cells: list[Cell], files: dict[str, Path]) -> str:
    """The comparison's index.html: its grids and one sortable row per cell (empty columns left out)."""
    rows = [cell_row(i, cell) for i, cell in enumerate(cells)]
    for row in rows:
        row["image"] = Path(row["image"]).name if row["image"] else None
    shown = [c for c in (*REPORT_COLUMNS, *score_columns()) if any(row.get(c) not in (None, "") for row in rows)]
    cfg = plan.cfg
    header = {"prompt": cfg.prompt, "negative prompt": cfg.negative_prompt, "seed": cfg.seed, "model": cfg.model.path,
              "size": f"{plan.width}x{plan.height}", "cells": len(cells)}
    grids = [path.name for name, path in files.items() if name.startswith("grid")]
    return page(f"Comparison {files['config'].parent.name}", header, grids, shown, rows)


def summary(result: Comparison) -> list[str]:
    """One line per cell, then the files written, for the command line (from the main process only)."""
    if not is_main():
        return []
    lines = []
    width = max(len(cell.entry.label) for cell in result.cells)
    for cell in result.cells:
        label = cell.entry.label.replace("\n", " ")
        head = f"{label:<{width}} {cell.steps:>4} steps  cfg {cell.guidance:<5g} {cell.status:<6}"
        if cell.status != "ok":
            lines.append(f"{head} {cell.error}")
            continue
        per_call = 1000 * cell.seconds / max(cell.unet_calls, 1)
        lines.append(f"{head} {cell.seconds:7.2f} s  {cell.unet_calls:>4} UNet calls  {per_call:7.1f} ms/call")
    lines += [f"{name}: {path}" for name, path in result.files.items()]
    return lines + [str(result.folder)]
