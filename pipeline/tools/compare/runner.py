"""Comparisons: one prompt and seed over schedulers x steps (x guidance), or over any keys (compare.axes: X/Y/Z),
the same noise in every cell unless an axis changes the seed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from pipeline.tools.compare.axes import cell_config, layout, parse_axes
from pipeline.tools.compare.config import SECTION, Entry, numbers, scheduler_entries
from pipeline.tools.compare.table import cell_row, cell_scores, spec_for_prompt, write_tables
from pipeline.models.components import Components
from pipeline.run.config import to_yaml
from pipeline.tools.drawing import caption, grid
from pipeline.common.errors import UserError
from pipeline.run.generate import Plan, check, generate_images, image_config, image_parameters, load, loaded_with
from pipeline.engine.guidance import MAX_GUIDANCE_SCALE
from pipeline.common.limits import MAX_CELLS, MAX_STEPS, check_sheet
from pipeline.run.outputs import save_image
from pipeline.run.processes import from_main, gathered, is_main, my_share, process_count
from pipeline.tools.report_page import page, write_report
from pipeline.tools.run_folder import new_run_folder, save_png, save_text
from pipeline.text.encoding import warn_about_prompt
from pipeline.tools.tool_config import generation_config


@dataclass
class Cell:
    """One image of the grid: its settings, its generation config, and what happened when it ran."""

    row: int
    column: int
    entry: Entry
    steps: int
    guidance: float
    cfg: DictConfig
    status: str = "not run"
    error: str = ""
    seconds: Optional[float] = None
    unet_calls: int = 0
    image: Optional[Path] = None
    scores: dict[str, Any] = field(default_factory=dict)
    row_label: str = ""
    column_label: str = ""
    z: int = 0
    z_label: str = ""
    plan: Optional[Plan] = None  # an axes cell's own checked plan (its keys may change size, model, ...)

    @property
    def stem(self) -> str:
        """The cell's file name stem: scheduler, steps and guidance, or its place in an X/Y/Z grid."""
        if self.plan is not None:
            return f"z{self.z + 1}-y{self.row + 1}-x{self.column + 1}"
        return f"{self.entry.key}-{self.steps}steps-cfg{self.guidance:g}"


@dataclass
class Comparison:
    """A finished comparison: its run folder, its cells and the files written."""

    folder: Path
    cells: list[Cell]
    files: dict[str, Path]


def plan_axes_cells(cfg: DictConfig) -> tuple[Plan, list[Cell]]:
    """Check every cell of an X/Y/Z comparison as a run of its own, before any weights load."""
    given = [key for key in ("schedulers", "steps", "guidance_scales") if cfg.compare[key] is not None]
    if given:
        raise UserError(f"give compare.axes or compare.{given[0]}, not both (an axis may vary the scheduler or steps).")
    if cfg.num_images != 1:
        raise UserError(f"num_images must be 1 for a comparison (one image per cell, from seed); got {cfg.num_images}.")
    axes = parse_axes(cfg.compare.axes)
    places = layout(axes)
    if len(places) > MAX_CELLS:
        raise UserError(f"compare.axes make {len(places)} cells; a comparison may have at most {MAX_CELLS}.")
    cells = []
    for z, row, column, picks in places:
        cell_cfg = cell_config(cfg, SECTION, axes, picks)
        try:
            plan = check(cell_cfg)
        except UserError as err:
            shown = ", ".join(axis.label(i).replace("\n", " ") for axis, i in zip(axes, picks))
            raise UserError(f"compare cell ({shown}): {err}") from None
        entry = Entry(plan.scheduler, OmegaConf.to_container(cell_cfg.scheduler.options, resolve=True))
        labels = [axis.label(i) for axis, i in zip(axes, picks)] + ["", "", ""]
        cells.append(Cell(row, column, entry, cell_cfg.steps, cell_cfg.guidance_scale, cell_cfg, column_label=labels[0],
                          row_label=labels[1], z=z, z_label=labels[2], plan=plan))
    largest = max(cells, key=lambda c: c.plan.width * c.plan.height).plan
    check_sheet("the comparison grid (compare.axes)", len(cells), largest.width, largest.height)
    return cells[0].plan, cells


def plan_cells(cfg: DictConfig) -> tuple[Plan, list[Cell]]:
    """Check the whole comparison and lay out its cells, row by row, before any weights load."""
    if cfg.compare.axes is not None:
        return plan_axes_cells(cfg)
    entries = scheduler_entries(cfg)
    steps = numbers(cfg.compare.steps, cfg.steps, "steps", 1, f"an integer from 1 to {MAX_STEPS}", MAX_STEPS)
    scales = numbers(cfg.compare.guidance_scales, cfg.guidance_scale, "guidance_scales", 0,
                     f"a number in [0, {MAX_GUIDANCE_SCALE:g}]", MAX_GUIDANCE_SCALE)
    if cfg.num_images != 1:
        raise UserError(f"num_images must be 1 for a comparison (one image per cell, from seed); got {cfg.num_images}.")
    count = len(entries) * len(steps) * len(scales)
    if count > MAX_CELLS:
        raise UserError(f"compare.schedulers x steps x guidance_scales make {count} cells; a comparison may have at "
                        f"most {MAX_CELLS}.")
    plan = check(generation_config(cfg, SECTION))
    check_sheet("the comparison grid (compare.schedulers x steps x guidance_scales)", count, plan.width, plan.height)
    cells = []
    for row, entry in enumerate(entries):
        for column, (count, scale) in enumerate((s, g) for s in steps for g in scales):
            scheduler = {"name": entry.key, "options": entry.options}
            cell_cfg = generation_config(cfg, SECTION, scheduler=scheduler, steps=count, guidance_scale=scale)
            cells.append(Cell(row, column, entry, count, scale, cell_cfg, row_label=entry.label))
    first_row = [c for c in cells if c.row == 0]
    several = len({c.guidance for c in first_row}) > 1
    for cell in cells:
        cell.column_label = f"{cell.steps} steps" + (f"\ncfg {cell.guidance:g}" if several else "")
    return plan, cells


def column_labels(cells: list[Cell]) -> list[str]:
    """The first row's column labels: 'N steps' (with the guidance scale below it when more than one scale is
    compared), or an X axis's values."""
    return [c.column_label for c in cells if c.row == 0 and c.z == 0]


def run_cell(components: Components, plan: Plan, cell: Cell, folder: Path) -> Optional[Image.Image]:
    """Generate one cell with the core, timing it and counting UNet calls; a failure is recorded, not raised."""
    calls: list[int] = []
    cell_plan = cell.plan or replace(plan, cfg=cell.cfg, scheduler=cell.entry.key)
    seed = cell_plan.cfg.seed
    start = time.perf_counter()
    try:
        [image] = generate_images(
            components, cell.cfg, [seed], cell_plan.height, cell_plan.width, progress=False,
            callback=lambda i, t, latents: calls.append(i),
        )
    except Exception as err:  # a cell is independent: one scheduler failing must not stop the others
        cell.status, cell.error = "error", f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        return None
    cell.seconds, cell.unet_calls, cell.status = time.perf_counter() - start, len(calls), "ok"
    cell.image = save_image(image, folder, cell.stem, image_parameters(cell_plan, seed), image_config(cell_plan, seed))
    return image


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


RESULT = ("status", "error", "seconds", "unet_calls", "image", "scores")


def run_comparison(cfg: DictConfig, progress: bool = True) -> Comparison:
    """Check, load the components once, run every cell through generate_images, then write grid and tables. Under a
    launcher each process runs its share of the cells into one folder and the main process writes the rest."""
    plan, cells = plan_cells(cfg)
    mine = my_share(list(range(len(cells))))
    folder, components, loaded = None, None, ""
    images: dict[int, Image.Image] = {}
    bar = tqdm(mine, desc="compare", unit="cell", disable=not (progress and is_main()))
    try:
        for index in bar:
            cell = cells[index]
            cell_plan = cell.plan or plan
            if loaded_with(cell_plan) != loaded:  # axes over the model or add-ons load again; others share a load
                loaded, components = loaded_with(cell_plan), load(cell_plan)
                warn_about_prompt(components.tokenizer, cell.cfg.prompt, "prompt", cfg.prompt_syntax)
            if folder is None:
                folder = _run_folder(plan, cfg)
            bar.set_postfix_str(cell.stem)
            image = run_cell(components, plan, cell, folder)
            if image is not None:
                images[index] = image
                cell.scores = cell_scores(image, spec_for_prompt(cell.cfg.prompt), cell.cfg.prompt)
    finally:
        if folder is None:  # no cell here (or none reached): the folder is still shared with the others
            folder = _run_folder(plan, cfg) if mine == [] else None
        _collect(cells, mine, images)
        files = _write_results(plan, cells, images, folder) if folder is not None and is_main() else {}
    return Comparison(folder, cells, files)


def _run_folder(plan: Plan, cfg: DictConfig) -> Path:
    """The comparison's folder, made by the main process (with its config.yaml) and known to every process."""
    folder = new_run_folder(plan.output_dir, SECTION) if is_main() else None
    if folder is not None:
        save_text(to_yaml(cfg), folder, "config.yaml")
    return from_main(folder)


def _collect(cells: list[Cell], mine: list[int], images: dict[int, Image.Image]) -> None:
    """Bring every process's cell results (and pictures, read back from their PNGs) to this process."""
    if process_count() == 1:
        return
    results = gathered([(i, {key: getattr(cells[i], key) for key in RESULT}) for i in mine])
    for index, result in results:
        for key, value in result.items():
            setattr(cells[index], key, value)
        if index not in images and cells[index].image is not None:
            with Image.open(cells[index].image) as picture:
                images[index] = picture.convert("RGB")


def _write_results(plan: Plan, cells: list[Cell], images: dict[int, Image.Image], folder: Path) -> dict[str, Path]:
    """The grids (one per Z value), the tables and the report."""
    files = {"config": folder / "config.yaml"}
    for z in sorted({cell.z for cell in cells}):
        name = "grid.png" if z == 0 and all(c.z == 0 for c in cells) else f"grid-z{z + 1}.png"
        files[name.removesuffix(".png")] = save_png(grid_picture(plan, cells, images, z), folder, name)
    files.update(write_tables(plan, cells, folder))
    files["report"] = write_report(folder, comparison_page(plan, cells, files))
    return files


REPORT_COLUMNS = ("cell", "x", "y", "z", "label", "steps", "guidance", "status", "error", "seconds", "unet_calls",
                  "seconds_per_unet_call", "adherence", "missed", "score_colour", "score_background", "score_shape",
                  "colour_share")


def comparison_page(plan: Plan, cells: list[Cell], files: dict[str, Path]) -> str:
    """The comparison's index.html: its grids and one sortable row per cell (empty columns left out)."""
    rows = [cell_row(i, cell) for i, cell in enumerate(cells)]
    for row in rows:
        row["image"] = Path(row["image"]).name if row["image"] else None
    columns = [c for c in REPORT_COLUMNS if any(row.get(c) not in (None, "") for row in rows)]
    cfg = plan.cfg
    header = {"prompt": cfg.prompt, "negative prompt": cfg.negative_prompt, "seed": cfg.seed, "model": cfg.model.path,
              "size": f"{plan.width}x{plan.height}", "cells": len(cells)}
    grids = [path.name for name, path in files.items() if name.startswith("grid")]
    return page(f"Comparison {files['config'].parent.name}", header, grids, columns, rows)


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
