"""The control axis: models that read a picture and feed the UNet (ControlNet, T2I-Adapter, IP-Adapter), orthogonal
to the task (docs/extending.md, "Adding a control"). A control is a module with:

check(cfg, info, (width, height)) -> None: one-sentence errors for its config entries, before any weights load;
load(cfg, info, components) -> Any: its models, loaded after the model's parts and performance options;
prepare(loaded, ctx, conditioning) -> Conditioning (optional): its names added to the bundle for both halves
    (IP-Adapter's image embeddings);
wrap(call, loaded, ctx, setup) -> ModelCall (optional): the model call with what it adds to the UNet (a
    ControlNet's residuals, computed from the latents before the task's extra channels);
fields(cfg) -> dict: what the image's parameters say of it.
A control whose config key lists nothing is not imported.
"""

from __future__ import annotations

import hashlib
from importlib import import_module
from pathlib import Path
from types import ModuleType

from typing import Any

from omegaconf import DictConfig

from pipeline.common.errors import UserError

MODULES = {"controlnets": "controlnet", "adapters": "t2i_adapter", "ip_adapters": "ip_adapter"}  # config key -> module


def active(cfg: DictConfig) -> dict[str, ModuleType]:
    """The control modules whose config key lists entries, by key, in MODULES' order."""
    return {key: import_module(f"pipeline.controls.{name}") for key, name in MODULES.items() if cfg[key]}


def in_use(cfg: DictConfig, loaded: dict[str, Any]) -> list[tuple[ModuleType, Any]]:
    """(module, loaded units) of each loaded control this run lists: components loaded with a ControlNet or a
    T2I-Adapter also serve a run that lists none (an evaluation's "no control" image), exactly as if none were
    loaded (an IP-Adapter's attention processors stay in the UNet)."""
    modules = active(cfg)
    return [(modules[key], units) for key, units in loaded.items() if key in modules]


def check_controls(cfg: DictConfig, info, size: tuple[int, int]) -> None:
    """Each listed control's own checks, and the combinations a control cannot join: DeepCache (its shallow passes
    skip the blocks a control adds to) and a refiner (the controls condition the base's steps only)."""
    controls = active(cfg)
    if not controls:
        return
    keys = ", ".join(controls)
    if cfg.performance.deepcache_interval > 1:
        raise UserError(f"performance.deepcache_interval > 1 cannot be combined with {keys} (DeepCache's cached steps "
                        "skip the UNet blocks a control adds to); set one of them off.")
    if cfg.refiner.path:
        raise UserError(f"refiner.path cannot be combined with {keys} yet: the controls condition the base model's "
                        "steps only.")
    for control in controls.values():
        control.check(cfg, info, size)


def image_hashes(cfg: DictConfig) -> str:
    """YAML comment lines naming each control image with the first 12 hex digits of its sha256, so an image's
    config says which pictures it was made from, not only where they were."""
    lines = []
    for key in active(cfg):
        for n, entry in enumerate(cfg[key]):
            if entry.image and Path(entry.image).is_file():
                digest = hashlib.sha256(Path(entry.image).read_bytes()).hexdigest()[:12]
                lines.append(f"# {key}[{n}].image {entry.image} sha256 {digest}\n")
    return "".join(lines)
