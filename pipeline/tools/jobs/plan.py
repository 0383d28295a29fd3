"""Planning a job: every line checked before any weights load, and the work lines share done once.

Each line is checked as a run of its own would be (`generate.check` on the job's config with the line's keys), with
two savings that cannot change an answer:
- the expensive parts of a check (each model built on the meta device for the weights check, the UNet's size for
  `model.dtype: auto`) are kept per model config (weights_check, precision): lines that change other keys share them;
- a line that differs from a checked line only in its texts (`prompt`, `negative_prompt`) shares that line's check
  when its texts name the same add-ons. check() reads the texts only for their `<lora:...>` tags and the
  embeddings_dir files they name, and both are read for every line (a bad tag is refused naming its line).
Planning that takes more than a second shows a progress bar on stderr.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig
from tqdm.auto import tqdm

from pipeline.run import config
from pipeline.models.addons.embeddings import in_dir
from pipeline.common.errors import UserError
from pipeline.run.generate import Plan, check, image_config
from pipeline.run.processes import is_main
from pipeline.text.tags import lora_tags
from pipeline.tools.jobs import JOB_KEYS, plain
from pipeline.tools.jobs.image_yaml import Template, template
from pipeline.tools.jobs.lines import job_lines
from pipeline.tools.jobs.manifest import identity_part

TEXT_KEYS = ("prompt", "negative_prompt")


def image_name(line: int, seed: int) -> str:
    """A job image's file stem: its line (from 1) and seed."""
    return f"line{line:04d}-seed{seed}"


@dataclass
class Unit:
    """One batch of one line: the unit of work a process takes. `plan` is the line's checked plan, or (`own` False)
    that of an earlier line which differs from it only in the texts its `overrides` set."""

    line: int
    plan: Plan
    seeds: list[int]
    where: str
    overrides: dict[str, Any]
    own: bool = True

    def names(self) -> list[str]:
        return [image_name(self.line, seed) for seed in self.seeds]

    def text(self, key: str) -> str:
        """The line's prompt or negative_prompt."""
        return self.plan.cfg[key] if self.own or key not in self.overrides else self.overrides[key]


@dataclass
class Job:
    """A checked job: its units in order, every image's name, the job's fingerprint, and the config lines start from."""

    units: list[Unit]
    names: list[str]
    identity: str
    base: DictConfig

    @property
    def folder(self) -> Path:
        return self.units[0].plan.output_dir

    def line_plan(self, unit: Unit) -> Plan:
        """The unit's plan with its line's own config (merged now for a line that shared another line's check)."""
        return unit.plan if unit.own else replace(unit.plan, cfg=line_config(self.base, unit.where, unit.overrides))


@dataclass
class _Checked:
    """A checked line whose check later lines may share: its plan, its batches of seeds, its texts, and its images'
    YAML as templates for other texts (made when a line first shares the check)."""

    plan: Plan
    batches: list[list[int]]
    texts: dict[str, str]
    templates: list[Optional[Template]] = field(default_factory=list)

    def images_yaml(self, texts: dict[str, str]) -> list[str] | None:
        """Each image's resolved YAML for a line with these texts, or None when a template could not be made."""
        if not self.templates:
            self.templates = [template(image_config(self.plan, seed, len(batch)), self.texts)
                              for batch in self.batches for seed in batch]
        if any(t is None for t in self.templates):
            return None
        return [t.fill(texts) for t in self.templates]


def line_config(base: DictConfig, where: str, overrides: dict) -> DictConfig:
    """The line's config: the job's, with the line's keys; keys a line may not set are refused."""
    for key in (*JOB_KEYS, "output_dir"):
        if key in overrides:
            raise UserError(f"{where} sets {key}, which only the job itself may set.")
    cfg = config.merge(base, overrides, where)
    if cfg.seed < 0:
        raise UserError(f"{where}: seed {cfg.seed} means a random seed, which a job cannot resume with; give a "
                        "fixed seed.")
    return cfg


def _check_line(base: DictConfig, where: str, overrides: dict, texts: dict[str, str]) -> _Checked:
    """The line checked as a run of its own, its errors naming the line."""
    cfg = line_config(base, where, overrides)
    try:
        plan = check(cfg)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    seeds, size = plan.seeds, cfg.batch_size
    return _Checked(plan, [seeds[start : start + size] for start in range(0, len(seeds), size)], texts)


def _addons_named(cfg: DictConfig, texts: dict[str, str], where: str) -> tuple:
    """What check() reads from a line's texts: the `<lora:...>` tags of its prompt and the embeddings_dir files
    named in its prompt or negative prompt (the rest of `cfg` is the line's)."""
    prompt, negative = texts.get("prompt", cfg.prompt), texts.get("negative_prompt", cfg.negative_prompt)
    try:
        tags = tuple(lora_tags(prompt))
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    return tags, tuple(in_dir(cfg.embeddings_dir, [prompt, negative]))


def _shared(first: Optional[DictConfig], checked: dict[tuple, _Checked], others: str, texts: dict[str, str],
            where: str) -> tuple[_Checked, list[str]] | None:
    """The check of an earlier line that differs from this one only in its texts, which name the same add-ons, and
    this line's images' YAML; None when there is none (or its YAML cannot be templated)."""
    if first is None:
        return None
    found = checked.get((others, _addons_named(first, texts, where)))
    yamls = found.images_yaml(texts) if found else None
    return (found, yamls) if yamls is not None else None


def plan_job(cfg: DictConfig, progress: bool = True) -> Job:
    """Check every line before any weights load; name every image and fingerprint the job (manifest.identity_part)."""
    base, lines = plain(cfg), job_lines(cfg)
    units, names, digest = [], [], hashlib.sha256()
    first: dict[str, DictConfig] = {}  # a line's keys but its texts -> the config of the first line checked with them
    checked: dict[tuple, _Checked] = {}  # ... and the add-ons its texts name -> that line's check
    with tqdm(total=len(lines), desc="checking lines", unit="line", delay=1.0, leave=False,
              disable=not (progress and is_main())) as bar:
        for line, (where, overrides) in enumerate(lines, start=1):
            texts = {key: value for key, value in overrides.items() if key in TEXT_KEYS and isinstance(value, str)}
            others = repr(([(k, v) for k, v in overrides.items() if k not in texts], sorted(texts)))
            shared = _shared(first.get(others), checked, others, texts, where)
            if shared:
                found, yamls = shared
            else:
                found = _check_line(base, where, overrides, texts)
                yamls = [image_config(found.plan, seed, len(batch)) for batch in found.batches for seed in batch]
                first.setdefault(others, found.plan.cfg)
                checked.setdefault((others, _addons_named(found.plan.cfg, texts, where)), found)
            units += [Unit(line, found.plan, batch, where, overrides, own=not shared) for batch in found.batches]
            for name, yaml in zip((image_name(line, seed) for batch in found.batches for seed in batch), yamls):
                names.append(name)
                digest.update(identity_part(name, yaml))
            bar.update()
    return Job(units, names, digest.hexdigest(), base)
