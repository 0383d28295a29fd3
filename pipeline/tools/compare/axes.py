"""X/Y/Z comparisons over any config key: `compare.axes`, up to three axes of {key, values}.

`key` is a dotted config key (`steps`, `guidance_scale`, `strength`, `seed`, `performance.token_merging`, ...), a
list of keys changed together (then each value is a list, one entry per key), `scheduler` (a name or
{name, options}, replacing the whole scheduler mapping), or `prompt_sr`: A1111's "Prompt S/R", where the first
value is searched for in the prompt (and negative prompt) and each value replaces it. The first axis runs across
(columns), the second down (rows), the third makes one grid per value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import product
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.run import config
from pipeline.common.errors import UserError
from pipeline.common.limits import check_list

MAX_AXES = 3
PROMPT_SR, SCHEDULER = "prompt_sr", "scheduler"
NOT_AN_AXIS = "output_dir"  # the comparison's own folder: a cell that moved it would be written into the first


@dataclass
class Axis:
    """One axis: the keys it sets and its values (for several keys, one list per value)."""

    keys: list[str]
    values: list[Any]
    where: str

    @property
    def name(self) -> str:
        return "Prompt S/R" if self.keys == [PROMPT_SR] else ", ".join(self.keys)

    def label(self, index: int) -> str:
        """What a grid shows for value `index`: the value, or key=value pairs for several keys."""
        value = self.values[index]
        if self.keys == [SCHEDULER]:
            from pipeline.engine.schedulers import spec_of

            name = value["name"] if isinstance(value, dict) else value
            options = value.get("options") or {} if isinstance(value, dict) else {}
            return "\n".join([spec_of(name).label, *(f"{k}={v}" for k, v in options.items())])
        if len(self.keys) > 1:
            return "\n".join(f"{k}={v}" for k, v in zip(self.keys, value))
        return f"{self.keys[0]}={value}" if self.keys != [PROMPT_SR] else str(value)


def _axis(index: int, item: Any) -> Axis:
    """Validate one entry of compare.axes."""
    where = f"compare.axes[{index}]"
    if not isinstance(item, dict) or set(item) != {"key", "values"}:
        raise UserError(f"{where} must be a mapping with 'key' and 'values'; got {item!r}.")
    key, values = item["key"], item["values"]
    keys = key if isinstance(key, list) else [key]
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise UserError(f"{where}.key must be a config key or a list of keys; got {key!r}.")
    if NOT_AN_AXIS in keys:
        raise UserError(f"{where}.key {NOT_AN_AXIS} cannot be an axis: a comparison writes every cell into its "
                        "one folder under its output_dir; run one comparison per folder instead.")
    if not isinstance(values, list) or not values:
        raise UserError(f"{where}.values must be a non-empty list; got {values!r}.")
    check_list(f"{where}.values", values)
    if len(keys) > 1:
        for i, value in enumerate(values):
            if not isinstance(value, list) or len(value) != len(keys):
                raise UserError(f"{where}.values[{i}] must be a list of {len(keys)} values, one per key; "
                                f"got {value!r}.")
    if keys == [PROMPT_SR] and not all(isinstance(v, str) for v in values):
        raise UserError(f"{where}: Prompt S/R values must be text; got {values!r}.")
    return Axis(keys, values, where)


def parse_axes(value: Any) -> list[Axis]:
    """compare.axes as Axis objects: one to three."""
    items = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_AXES:
        raise UserError(f"compare.axes must be a list of 1 to {MAX_AXES} axes ({{key, values}}); got {items!r}.")
    return [_axis(i, item) for i, item in enumerate(items)]


def _set(data: dict, key: str, value: Any) -> None:
    """Set a dotted key in nested data (a new mapping where none is); a number indexes a list that is there
    (`controlnets.0.weight`)."""
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        if isinstance(node, list):
            node = node[_index(node, part, key)]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, (dict, list)):
            raise UserError(f"{key} is not a config key ({part} holds a value, not keys).")
        node = child
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    else:
        node[last] = value


def _index(items: list, part: str, key: str) -> int:
    """The list position a dotted key's part names, or one sentence where it names none."""
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"{key}: {part} is not an entry of that list (it has {len(items)}, numbered from 0).")
    return int(part)


def cell_config(cfg: DictConfig, section: str, axes: list[Axis], picks: tuple[int, ...]) -> DictConfig:
    """The generation config of one cell: the run's config with each axis's value set (Prompt S/R last)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop(section)
    where = ", ".join(f"{axis.where} value {axis.values[i]!r}" for axis, i in zip(axes, picks))
    for axis, i in sorted(zip(axes, picks), key=lambda pair: pair[0].keys == [PROMPT_SR]):
        value = copy.deepcopy(axis.values[i])
        if axis.keys == [PROMPT_SR]:
            search = axis.values[0]
            if search not in data["prompt"]:
                raise UserError(f"{axis.where}: Prompt S/R searches for {search!r}, which the prompt does not hold.")
            data["prompt"] = data["prompt"].replace(search, value)
            data["negative_prompt"] = data["negative_prompt"].replace(search, value)
        elif axis.keys == [SCHEDULER]:
            data["scheduler"] = value if isinstance(value, dict) else {"name": value, "options": {}}
        else:
            for key, part in zip(axis.keys, value if len(axis.keys) > 1 else [value]):
                _set(data, key, part)
    return config.merge(config.load(None, settle=False), data, where)


def layout(axes: list[Axis]) -> list[tuple[int, int, int, tuple[int, ...]]]:
    """(z, row, column, picks) for every cell: x across, y down, z one grid each, in reading order."""
    sizes = [len(axis.values) for axis in axes] + [1] * (MAX_AXES - len(axes))
    cells = []
    for z, y, x in product(range(sizes[2]), range(sizes[1]), range(sizes[0])):
        cells.append((z, y, x, (x, y, z)[: len(axes)]))
    return cells
