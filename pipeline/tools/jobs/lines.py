"""A job's lines: each a mapping of config keys (a bare prompt is {prompt: ...}), from the list or the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.common import yaml_guard
from pipeline.common.errors import UserError

SUFFIXES = (".txt", ".jsonl", ".yaml", ".yml")


def _line(item: Any, where: str) -> dict[str, Any]:
    """One line as overrides: a prompt string, or a mapping of keys."""
    if isinstance(item, str):
        return {"prompt": item}
    if isinstance(item, dict) and item:
        return item
    raise UserError(f"{where} must be a prompt or a mapping of config keys; got {item!r}.")


def _text_lines(path: Path) -> list[tuple[str, Any]]:
    """(where, item) per non-empty line of a .txt (a prompt) or .jsonl (a JSON object) file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"prompts_file {path} is not UTF-8 text.") from None
    items = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"prompts_file {path} line {number}"
        if path.suffix == ".txt":
            items.append((where, raw.strip()))
            continue
        try:
            items.append((where, json.loads(raw)))
        except json.JSONDecodeError as err:
            raise UserError(f"{where} is not valid JSON ({err.msg} at column {err.colno}).") from None
    return items


def _file_lines(path: Path) -> list[tuple[str, Any]]:
    """(where, item) per entry of a prompts file."""
    if not path.is_file():
        raise UserError(f"prompts_file {path} does not exist.")
    if path.suffix not in SUFFIXES:
        raise UserError(f"prompts_file {path} must be .txt (a prompt per line), .jsonl (a JSON object of keys per "
                        "line) or .yaml (a list of prompts or mappings).")
    if path.suffix in (".txt", ".jsonl"):
        return _text_lines(path)
    try:
        data = yaml_guard.load_file(path, f"prompts_file {path}")
    except Exception as err:  # noqa: BLE001 - any reading or parsing failure is the file's
        raise UserError(f"prompts_file {path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"prompts_file {path} must hold a list of prompts or mappings; got a {type(data).__name__}.")
    return [(f"prompts_file {path} entry {i + 1}", item) for i, item in enumerate(data)]


def job_lines(cfg: DictConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every line of the job as (where it comes from, its overrides); an empty job is refused."""
    if cfg.prompts and cfg.prompts_file is not None:
        raise UserError("give prompts or prompts_file, not both.")
    if cfg.prompts_file is not None:
        path = Path(cfg.prompts_file)
        items, source = _file_lines(path), f"prompts_file {path}"
    else:
        items = [(f"prompts[{i}]", item) for i, item in enumerate(OmegaConf.to_container(cfg.prompts))]
        source = "prompts"
    if not items:
        raise UserError(f"{source} holds no prompts.")
    return [(where, _line(item, where)) for where, item in items]
