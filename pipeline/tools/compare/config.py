"""The comparison's config: a generation Config plus a `compare:` section, and the checks of its lists."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from pipeline.run.config import Config
from pipeline.common.errors import UserError
from pipeline.common.limits import check_list
from pipeline.engine.schedulers import NOISE, SCHEDULERS, check_options, resolve, serving
from pipeline.tools.tool_config import load_tool

SECTION = "compare"


@dataclass
class CompareSection:
    """What varies: schedulers ('all', or names and {name, options} entries), steps, guidance (null = the run's
    own); or `axes`, up to three of any keys."""

    schedulers: Any = None
    steps: Optional[list[int]] = None
    guidance_scales: Optional[list[float]] = None
    axes: Any = None  # X/Y/Z over any keys instead: [{key, values}, ...] (pipeline/tools/compare/axes.py)


@dataclass
class CompareConfig(Config):
    """A generation config plus the comparison's `compare:` section."""

    compare: CompareSection = field(default_factory=CompareSection)


@dataclass
class Entry:
    """One row of the grid: a registered scheduler and the config options given to it."""

    key: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        """The A1111 display name, with the options on lines below it."""
        return "\n".join([SCHEDULERS[self.key].label, *(f"{k}={v}" for k, v in self.options.items())])


def load(path: str | Path | None, overrides: list[str] = ()) -> DictConfig:
    """The comparison config: defaults <- base.yaml <- the file <- key=value overrides, strict keys."""
    return load_tool(CompareConfig, path, overrides)


def _entry(index: int, item: Any, kind: str = NOISE) -> Entry:
    """Validate one item of compare.schedulers: a name, or a mapping {name, options}."""
    where = f"compare.schedulers[{index}]"
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"name", "options"})
        if unknown or "name" not in item:
            raise UserError(f"{where} must be a name or a mapping with 'name' and 'options'; got keys {sorted(item)}.")
        name, options = item["name"], item.get("options") or {}
        if not isinstance(options, dict):
            raise UserError(f"{where}.options must be a mapping of scheduler config keys; got {options!r}.")
    elif isinstance(item, str):
        name, options = item, {}
    else:
        raise UserError(f"{where} must be a scheduler name or a mapping {{name, options}}; got {item!r}.")
    try:
        key = resolve(name, kind)
        check_options(key, options)
    except UserError as err:
        raise UserError(f"{where}: {str(err).replace('scheduler.', '', 1)}") from None
    return Entry(key, dict(options))


def scheduler_entries(cfg: DictConfig, kind: str = NOISE) -> list[Entry]:
    """The rows: every registered scheduler of the model's kind (engine/schedulers.py) for 'all', the listed ones,
    or the run's own scheduler for null."""
    value = cfg.compare.schedulers
    if value is None:
        return [Entry(resolve(cfg.scheduler.name, kind), OmegaConf.to_container(cfg.scheduler.options, resolve=True))]
    if value == "all":
        return [Entry(key, {}) for key in serving(kind)]
    items = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    if not isinstance(items, list) or not items:
        raise UserError(f"compare.schedulers must be 'all', a non-empty list of schedulers, or null; got {items!r}.")
    check_list("compare.schedulers", items)
    return [_entry(i, item, kind) for i, item in enumerate(items)]


def numbers(values: Optional[list], default: float, key: str, lowest: float, must: str,
            highest: float = math.inf) -> list:
    """A list of steps or guidance scales (the run's own value when null), each checked against its bounds."""
    if values is None:
        return [default]
    if len(values) == 0:
        raise UserError(f"compare.{key} must be a non-empty list or null; got [].")
    check_list(f"compare.{key}", values)
    for i, value in enumerate(values):
        if not lowest <= value <= highest:  # NaN fails too
            raise UserError(f"compare.{key}[{i}] must be {must}; got {value}.")
    return list(values)
