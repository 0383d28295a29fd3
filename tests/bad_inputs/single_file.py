"""Single-file checkpoints (model.path a .safetensors/.ckpt file, model.config) that cannot be read as one model."""

import pickle
from pathlib import Path

import torch
from safetensors.torch import save_file

from bad_inputs import Case
from pipeline.lab.fixtures.to_ldm import write_checkpoint


def _saved(tmp_path: Path, name: str, tensors: dict) -> Path:
    path = tmp_path / "checkpoints" / name
    path.parent.mkdir(exist_ok=True)
    save_file(tensors, path)
    return path


def _tiny(tmp_path: Path, model: Path) -> Path:
    return write_checkpoint(model, tmp_path / "checkpoints" / "tiny.safetensors")


def _truncated(tmp_path: Path, model: Path) -> Path:
    path = _tiny(tmp_path, model)
    path.write_bytes(path.read_bytes()[:5000])
    return path


class _Code:
    """Unpickling this runs a call; weights-only loading refuses it."""

    def __reduce__(self):
        return (print, ("ran",))


def _code_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoints" / "code.ckpt"
    path.parent.mkdir(exist_ok=True)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": _Code()}, path, pickle_module=pickle)
    return path


CASES = [
    Case("checkpoint: missing file", ["model.path=/nonexistent/model.safetensors"],
         "model.path /nonexistent/model.safetensors does not exist"),
    Case("checkpoint: pickle refused", lambda t, m: [f"model.path={_code_ckpt(t)}"],
         "is a pickle file; set model.allow_pickle=true"),
    Case("checkpoint: code in a pickle", lambda t, m: [f"model.path={_code_ckpt(t)}", "model.allow_pickle=true"],
         "cannot be read as a weights-only checkpoint"),
    Case("checkpoint: not a whole model",
         lambda t, m: [f"model.path={_saved(t, 'lora.safetensors', {'lora_unet_x.lora_down.weight': torch.zeros(2, 2)})}"],
         "holds no UNet in the original layout"),
    Case("checkpoint: another family",
         lambda t, m: [f"model.path={_saved(t, 'xl.safetensors', {'model.diffusion_model.out.2.weight': torch.zeros(1), 'first_stage_model.encoder.conv_in.weight': torch.zeros(1), 'conditioner.embedders.1.model.ln_final.weight': torch.zeros(1)})}"],
         "holds no text encoder of a known family"),
    Case("checkpoint: shapes of another model", lambda t, m: [f"model.path={_tiny(t, m)}"],
         "does not fit the unet of"),
    Case("checkpoint: truncated", lambda t, m: [f"model.path={_truncated(t, m)}", f"model.config={m}"],
         "is incomplete or damaged"),
    Case("checkpoint: unknown model.config", lambda t, m: [f"model.path={_tiny(t, m)}", "model.config=sd3"],
         "model.config must be one of sd1, sd2, sd2-base, sdxl, sdxl-refiner or a folder"),
    Case("model.config with a folder", lambda t, m: ["model.config=sd1"],
         "model.config applies to a single-file checkpoint"),
]
