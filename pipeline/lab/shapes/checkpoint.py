"""Run-folder bookkeeping: resumable training state, stage timings and the JSON summary."""

import json
import math
import os
from pathlib import Path
from typing import Any

import torch


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a training state atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    torch.save(state, temp)
    os.replace(temp, path)


def load_state(path: Path) -> dict[str, Any] | None:
    """Read a training state saved by `save_state` (tensors and plain data only), or None."""
    return torch.load(path, weights_only=True) if path.exists() else None


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json, or an empty one."""
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {"stages": {}, "evals": []}


def update_summary(run_dir: Path, key: str, value: Any, stage: str | None = None) -> None:
    """Set summary[key] (or summary['stages'][stage][key]) and rewrite summary.json atomically."""
    summary = read_summary(run_dir)
    target = summary["stages"].setdefault(stage, {}) if stage else summary
    target[key] = value
    temp = run_dir / "summary.json.tmp"
    temp.write_text(json.dumps(summary, indent=2))
    os.replace(temp, run_dir / "summary.json")


def append_eval(run_dir: Path, record: dict[str, Any]) -> None:
    """Add one adherence measurement to the summary's list."""
    evals = read_summary(run_dir)["evals"]
    update_summary(run_dir, "evals", [*evals, record])


def cosine_lr(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to `floor`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
