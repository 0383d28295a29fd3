"""The flow families' one-file checkpoints (SD3 / SD3.5, FLUX.1): which parts the file holds, which come from
model.config's folder, their configs and header checks before loading, and the loading itself.

A part the file holds is converted by diffusers' own conversions (models/families/flow_file.py) and loaded by its
`from_single_file` (the transformer, the VAE) or built and given its tensors (the text encoders, as diffusers'
single-file text encoder loaders do). A part it lacks is read from model.config when that is a diffusers-format
folder holding its weights (as diffusers' `from_single_file(..., config=folder)` fills a pipeline); else an optional
part (SD3's T5) is left out, and a required one (FLUX's VAE, CLIP and T5) is one sentence. T5's tokenizer cannot be
shipped here (it cannot be built offline), so a T5 the file holds needs a diffusers-format folder too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, load_single_file_checkpoint

from pipeline.common.errors import UserError, first_line
from pipeline.common.file_checks import quietly
from pipeline.models.families import Family
from pipeline.models.families.flow_file import VAES, convert_flow_text
from pipeline.models.single_file.encoders import build_text_encoder
from pipeline.models.single_file.detect import check_shapes, read_part_config, text_config
from pipeline.models.single_file.header import Header
from pipeline.models.weights_check import check_weights, stem, weight_files

FOLDER_HINT = {"sd3": "stabilityai/stable-diffusion-3.5-medium", "flux": "black-forest-labs/FLUX.1-dev"}


def holds(names, family: Family, part: str) -> bool:
    """Whether a checkpoint with these tensor names holds the part (its transformer always does)."""
    if part == family.denoiser:
        return True
    prefixes = VAES if part == "vae" else (dict(family.flow_file.texts)[part],)
    return any(name.startswith(prefixes) for name in names)


def tokenizer_of(part: str) -> str:
    """The tokenizer a text encoder reads (text_encoder_3's is tokenizer_3)."""
    return part.replace("text_encoder", "tokenizer")


def _hint(family: Family) -> str:
    return f"a diffusers-format {family.label} folder (a download of {FOLDER_HINT[family.name]}, say)"


def parts_to_load(header: Header, path: Path, folder: Path, family: Family, without: tuple[str, ...]) -> tuple:
    """The parts a run loads (weighted parts and their tokenizers): each from the file when it holds it, else from
    the folder's weights; an optional part neither has, or one model.without names, is left out. A required part
    neither has, or a T5 without a tokenizer, is one sentence."""
    loaded, missing = [], []
    for part in family.weighted:
        if part.optional and part.optional in without:
            continue
        if holds(header.tensors, family, part.name) or weight_files(folder / part.name, stem(part)) is not None:
            loaded.append(part.name)
        elif not part.optional:
            missing.append(part.name)
    if missing:
        raise UserError(f"model.path {path} holds no {', '.join(missing)} (a {family.label} file may hold the "
                        f"transformer alone) and model.config {folder} has no weights for it: set model.config to "
                        f"{_hint(family)} to read the missing parts from.")
    tokenizers = [tokenizer_of(name) for name in loaded if name.startswith("text_encoder")]
    for name in tokenizers:
        if not (folder / name).is_dir():
            part = family.part(name.replace("tokenizer", "text_encoder"))
            leave = f", or model.without=[{part.optional}] to run without it" if part.optional else ""
            raise UserError(f"model.path {path} holds a T5 encoder ({part.name}) but model.config {folder} has no "
                            f"{name} (T5's tokenizer is not shipped: it cannot be built offline): set model.config "
                            f"to {_hint(family)}, whose {name} is read{leave}.")
    return (*loaded, *tokenizers)


def _converted(header: Header, path: Path, family: Family, configs: dict[str, Any]) -> dict[str, dict]:
    """The file's tensors of each part in `configs` under diffusers' names, converted on the meta device by the
    conversions loading uses; a tensor a conversion needs and the file lacks is one sentence."""
    meta = {name: torch.empty(shape, device="meta") for name, shape in header.tensors.items()}
    texts = dict(family.flow_file.texts)
    converted = {}
    for part, config in configs.items():
        try:
            with quietly():
                if part == family.denoiser:
                    converted[part] = family.flow_file.convert_transformer(dict(meta), config)
                elif part == "vae":
                    converted[part] = convert_ldm_vae_checkpoint(dict(meta), config)
                else:
                    converted[part] = convert_flow_text(meta, texts[part], config)
        except (KeyError, RuntimeError, ValueError, IndexError) as err:
            raise UserError(f"model.path {path} holds no whole {family.label} {part}: diffusers' conversion of it "
                            f"fails ({type(err).__name__}: {first_line(err)}).") from None
    return converted


def read_flow_configs(header: Header, path: Path, folder: Path, family: Family, allow_pickle: bool,
                      without: tuple[str, ...]) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """The configs of the parts a run loads (and the scheduler's), and those parts, after checking that every tensor
    the configs' models need is in the file with its shape (the parts it holds) or in the folder's weight files (the
    parts read from there); else one sentence saying which."""
    loaded = parts_to_load(header, path, folder, family, without)
    weighted = [family.part(name) for name in loaded if family.part(name).weighted]
    objects = {part.name: text_config(part, folder) if part.config else read_part_config(part.loader, folder,
                                                                                           part.name)
               for part in weighted}
    in_file = {name: config for name, config in objects.items() if holds(header.tensors, family, name)}
    converted = _converted(header, path, family, in_file)
    configs = {name: config if isinstance(config, dict) else config.to_dict() for name, config in objects.items()}
    first = dict(sorted(converted.items(), key=lambda item: item[0] != family.denoiser))  # the transformer's first
    check_shapes(path, folder, family, first, configs, "the configs of the model it is")
    check_weights(folder, {name: configs[name] for name in configs if name not in in_file}, allow_pickle, family)
    configs["scheduler"] = read_part_config(FlowMatchEulerDiscreteScheduler, folder, "scheduler")
    return configs, loaded


def load_flow_checkpoint(path: str, folder: str, family: Family, dtype: torch.dtype, vae_dtype: torch.dtype,
                         names: tuple[str, ...]) -> dict[str, Any]:
    """The parts `names` lists: from the checkpoint where it holds them, else from the folder."""
    parts: dict[str, Any] = {}
    with quietly():
        checkpoint = load_single_file_checkpoint(path, local_files_only=True)
        texts = dict(family.flow_file.texts)
        for name in names:
            part = family.part(name)
            if not part.weighted:
                parts[name] = part.loader.from_pretrained(folder, subfolder=name)
            elif not holds(checkpoint, family, name):
                parts[name] = part.loader.from_pretrained(folder, subfolder=name, use_safetensors=True,
                                                          dtype=vae_dtype if name == "vae" else dtype)
            elif name == family.denoiser:
                converted = family.flow_file.convert_transformer(dict(checkpoint), part.loader.load_config(
                    folder, subfolder=name))
                parts[name] = part.loader.from_single_file(converted, config=folder, subfolder=name,
                                                           torch_dtype=dtype, local_files_only=True)
            elif name == "vae":
                parts[name] = AutoencoderKL.from_single_file(dict(checkpoint), config=folder, subfolder=name,
                                                             torch_dtype=vae_dtype, local_files_only=True)
            else:
                text_config = part.config.from_pretrained(folder, subfolder=name)
                text_config.architectures = [part.loader.__name__]
                tensors = convert_flow_text(checkpoint, texts[name], text_config)
                parts[name] = build_text_encoder(part.loader, text_config, tensors, dtype)
    return parts
