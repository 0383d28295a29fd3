"""Weight files checked before loading: complete safetensors whose tensors are the ones the config's model has.

Reads only each file's header (safetensors checks that the data it declares is all there) and compares names
and shapes with the model the config builds on the meta device (no memory, ~0.05 s for SD 1.5's UNet; once per
config in a process, so a job of many lines builds each model once).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import ModelMixin
from safetensors import SafetensorError, safe_open

from pipeline.common.errors import UserError, reason
from pipeline.common.quiet import quiet_libraries
from pipeline.common.memo import remembered
from pipeline.models.families.family import Family, Part

# diffusers renames the VAE attention weights of old checkpoints on load; compare under the new names
DEPRECATED = re.compile(r"\.(query|key|value|proj_attn)\.(weight|bias)$")
RENAMED = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
# expected_tensors' builds, keyed by the part and its whole config (its repr: a changed value is a new key)
_BUILT: dict[tuple[str, str], dict[str, tuple[int, ...]]] = {}


def stem(part: Part) -> str:
    """The weight file name a part's library saves: diffusers' models and transformers' ones differ."""
    return "diffusion_pytorch_model" if issubclass(part.loader, ModelMixin) else "model"


def expected_tensors(part: Part, folder: Path, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the model this part's config describes, built on the meta device once per config
    (the model depends on the config alone, so a job's lines that name the same model share one build)."""
    try:
        with quiet_libraries():
            if part.config is not None:  # a transformers model: its config class reads the folder
                built: Any = part.config.from_pretrained(folder)
                key = (part.name, built.to_json_string(use_diff=False))
            else:
                built, key = config, (part.name, repr(sorted(config.items())))
            shapes = remembered(_BUILT, key, lambda: meta_tensors(part, built))
    except Exception as err:  # the config's values cannot build the model: say so instead of a traceback later
        raise UserError(f"model.path component {folder} has a config that builds no model ({reason(err)}).") from None
    return dict(shapes)


def meta_tensors(part: Part, config: Any) -> dict[str, tuple[int, ...]]:
    """Build the part's model from its config on the meta device (no memory) and list its tensors' shapes, less the
    ones tied to another (T5's encoder.embed_tokens is its shared embedding, stored once)."""
    with torch.device("meta"):
        model = part.loader(config) if part.config is not None else part.loader.from_config(config)
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items() if name not in tied}


def weight_files(folder: Path, stem: str) -> list[Path] | None:
    """The safetensors file(s) from_pretrained reads: the single file, or its index's shards; None if neither."""
    single = folder / f"{stem}.safetensors"
    if single.is_file():
        return [single]
    index = folder / f"{stem}.safetensors.index.json"
    if not index.is_file():
        return None
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"model weight index {index} cannot be read ({reason(err)}).") from None
    for shard in shards:
        if not (folder / shard).is_file():
            raise UserError(f"model weight index {index} names shard {shard}, which is missing.")
    return [folder / shard for shard in shards]


def file_tensors(file: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes from one safetensors header; a truncated or damaged file is one sentence naming it."""
    try:
        with safe_open(file, "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"model weight file {file} is incomplete or damaged ({reason(err)}).") from None


def _names(name: str) -> list[str]:
    """The names a stored tensor may be matched by: itself, its new-style name, and without one leading prefix."""
    names = [name, DEPRECATED.sub(lambda m: f".{RENAMED[m.group(1)]}.{m.group(2)}", name)]
    return names + [n.split(".", 1)[1] for n in names if "." in n]  # e.g. 'text_model.' in older CLIP files


def check_part(part: Part, folder: Path, config: dict[str, Any], allow_pickle: bool) -> None:
    """Every tensor the config's model needs is in the part's weight files, with its shape."""
    files = weight_files(folder, stem(part))
    if files is None:
        if allow_pickle:
            return  # pickle weights: no header to read before loading
        present = ", ".join(sorted(p.name for p in folder.glob("*.safetensors")))
        raise UserError(f"model.path component {folder} has no {stem(part)}.safetensors (it has {present}).")
    stored: dict[str, tuple[tuple[int, ...], Path]] = {}
    for file in files:
        for name, shape in file_tensors(file).items():
            for alias in _names(name):
                stored.setdefault(alias, (shape, file))
    for name, shape in expected_tensors(part, folder, config).items():
        if name not in stored:
            raise UserError(f"model weight file {files[0]} lacks tensor {name} (shape {list(shape)}), "
                            f"which the model in {folder / 'config.json'} has.")
        found, file = stored[name]
        if found != shape:
            raise UserError(f"model weight file {file} has tensor {name} of shape {list(found)}, "
                            f"but the model in {folder / 'config.json'} needs {list(shape)}.")


def check_weights(root: Path, configs: dict[str, dict[str, Any]], allow_pickle: bool, family: Family) -> None:
    """Check the weight files of each of the family's weighted parts in a local model folder against its config."""
    for name, config in configs.items():
        check_part(family.part(name), root / name, config, allow_pickle)
