"""What a single-file checkpoint holds, read before any model is built: tensor names, shapes and its training step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.common.file_checks import check_file, quietly
from pipeline.common.errors import UserError, first_line
from pipeline.models.weights_check import file_tensors

SUFFIXES = (".safetensors", ".ckpt")
UNET, VAE = "model.diffusion_model.", "first_stage_model."


@dataclass
class Header:
    """Tensor name -> shape in the original (CompVis/A1111) layout, and the `global_step` a .ckpt may record."""

    tensors: dict[str, tuple[int, ...]]
    global_step: int | None = None

    def has(self, prefix: str) -> bool:
        """Whether any tensor's name starts with `prefix`."""
        return any(name.startswith(prefix) for name in self.tensors)


def is_checkpoint_file(path: str) -> bool:
    """Whether model.path names one weight file rather than a folder or hub id."""
    return Path(path).suffix.lower() in (*SUFFIXES, ".pt", ".pth", ".bin") and not Path(path).is_dir()


def read_pickle(path: Path) -> tuple[dict, int | None]:
    """A .ckpt's state dict (tensors only: weights_only=True, memory-mapped) and its global_step, if recorded."""
    try:
        with quietly():
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # refused pickles and damaged files alike: one sentence, nothing run
        raise UserError(f"model.path {path} cannot be read as a weights-only checkpoint ({first_line(err)}).") from None
    step = loaded.get("global_step") if isinstance(loaded, dict) else None
    while isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise UserError(f"model.path {path} holds no state dict of tensors.")
    return loaded, step if isinstance(step, int) else None


def read_header(path: Path, allow_pickle: bool) -> Header:
    """Names and shapes (a safetensors file: its header only; a .ckpt with allow_pickle: loaded weights-only)."""
    check_file(path, "model.path", SUFFIXES, allow_pickle)
    if path.suffix == ".safetensors":
        return Header(file_tensors(path))
    state, step = read_pickle(path)
    return Header({k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}, step)
