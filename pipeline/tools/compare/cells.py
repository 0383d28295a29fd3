"""A comparison's cells: the lines of its job, one image each, laid out in a grid and checked before any weights
load (schedulers x steps x guidance, or compare.axes: X/Y/Z over any keys)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from pipeline.common.errors import UserError
from pipeline.common.limits import MAX_CELLS, MAX_STEPS, check_sheet
from pipeline.engine.guidance import MAX_GUIDANCE_SCALE
from pipeline.run.generate import Plan, check
from pipeline.tools.compare.axes import cell_config, layout, parse_axes
from pipeline.tools.compare.config import SECTION, Entry, numbers, scheduler_entries
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

    def line_plan(self, plan: Plan) -> Plan:
        """The plan the cell runs with: its own (axes), or the comparison's with the cell's config and scheduler."""
        return self.plan or replace(plan, cfg=self.cfg, scheduler=self.entry.key)


def _one_image(cfg: DictConfig) -> None:
    """A comparison makes one image per cell, from the seed."""
    if cfg.num_images != 1:
        raise UserError(f"num_images must be 1 for a comparison (one image per cell, from seed); got {cfg.num_images}.")


def plan_axes_cells(cfg: DictConfig) -> tuple[Plan, list[Cell]]:
    """Check every cell of an X/Y/Z comparison as a run of its own, before any weights load."""
    given = [key for key in ("schedulers", "steps", "guidance_scales") if cfg.compare[key] is not None]
    if given:
        raise UserError(f"give compare.axes or compare.{given[0]}, not both (an axis may vary the scheduler or steps).")
    _one_image(cfg)
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
    plan = check(generation_config(cfg, SECTION))
    entries = scheduler_entries(cfg, plan.info.family.schedulers)
    steps = numbers(cfg.compare.steps, cfg.steps, "steps", 1, f"an integer from 1 to {MAX_STEPS}", MAX_STEPS)
    scales = numbers(cfg.compare.guidance_scales, cfg.guidance_scale, "guidance_scales", 0,
                     f"a number in [0, {MAX_GUIDANCE_SCALE:g}]", MAX_GUIDANCE_SCALE)
    _one_image(cfg)
    count = len(entries) * len(steps) * len(scales)
    if count > MAX_CELLS:
        raise UserError(f"compare.schedulers x steps x guidance_scales make {count} cells; a comparison may have at "
                        f"most {MAX_CELLS}.")
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
