"""Jobs: many prompts in one run (`prompts:` or `prompts_file:`), each line a config of its own, resumable.

A job file is a generation config plus `prompts` (a list: prompts, or mappings of keys to override) or
`prompts_file` (a .txt file of one prompt per line, a .jsonl file of one JSON object of keys per line, or a
.yaml file holding such a list). Every image is named by its line and seed and written beside its YAML; a
manifest (`job.json`) in `output_dir` says what the job is and what is done, so running it again skips what is
there and never writes over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from pipeline.run import config
from pipeline.common.errors import UserError
from pipeline.common.seeds import settle_seed

JOB_KEYS = ("prompts", "prompts_file")


@dataclass
class JobConfig(config.Config):
    """A generation config plus the job's prompts; without them it is a plain run."""

    prompts: list[Any] = field(default_factory=list)
    prompts_file: Optional[str] = None


def load(path: str | Path | None, overrides: list[str] = ()) -> DictConfig:
    """A config that may be a job; a job's seed must be fixed (a random one could not resume)."""
    cfg = config.load(path, overrides, schema=JobConfig, settle=False)
    if is_job(cfg) and cfg.seed < 0:
        raise UserError(f"seed {cfg.seed} means a random seed, which a job cannot resume with; give a fixed seed.")
    return cfg if is_job(cfg) else settle_seed(cfg)


def is_job(cfg: DictConfig) -> bool:
    """Whether the config names prompts to run as a job."""
    return bool(cfg.get("prompts")) or cfg.get("prompts_file") is not None


def plain(cfg: DictConfig) -> DictConfig:
    """The generation Config without the job's keys."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in JOB_KEYS:
        data.pop(key, None)
    return config.merge(config.load(None, settle=False), data, "the job's config")
