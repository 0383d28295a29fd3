"""Add-ons users bring to a model (LoRA files, ...): gathered and checked before loading, applied after."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from omegaconf import DictConfig

from pipeline.models.inspect import ModelInfo
from pipeline.common.errors import UserError
from pipeline.text.tags import lora_tags
from pipeline.models.addons.embeddings import Embedding, check_tokens, file_hash, in_dir, read_embedding
from pipeline.models.addons.lora import Lora, addnet_hash, check_fit, find_in_dir, read_lora


def _adapter_name(path: Path, taken: set[str]) -> str:
    """A peft adapter name from the file name (letters, digits, underscores), unique in the run."""
    base = re.sub(r"\W", "_", path.stem) or "lora"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def gather_loras(cfg: DictConfig, info: ModelInfo) -> list[Lora]:
    """The config's `loras` then the prompt's `<lora:name:weight>` tags, read and fitted to the model's parts on
    the meta device; every problem is one sentence before any weights load."""
    wanted = [(Path(e.path), e.weight, f"loras[{i}].path") for i, e in enumerate(cfg.loras)]
    for name, weight in lora_tags(cfg.prompt):
        wanted.append((find_in_dir(name, cfg.lora_dir), weight, f"prompt tag <lora:{name}>"))
    loras: list[Lora] = []
    for path, weight, key in wanted:
        if not math.isfinite(weight):
            raise UserError(f"the weight of {key} must be a finite number; got {weight}.")
        state, alphas, metadata = read_lora(path, key, cfg.model.allow_pickle, info.configs[info.family.denoiser])
        name = _adapter_name(path, {lora.name for lora in loras})
        loras.append(Lora(name, path, weight, state, alphas, metadata))
    if loras:
        check_fit(loras, info.family, info.configs)
    return loras


def gather_embeddings(cfg: DictConfig, info: ModelInfo) -> list[Embedding]:
    """The config's `embeddings`, then the files of embeddings_dir whose names the prompt or negative prompt use;
    each read and checked against every text encoder's width and every tokenizer's words before any weights load."""
    listed = [(Path(p), f"embeddings[{i}]") for i, p in enumerate(cfg.embeddings)]
    named = {path.resolve() for path, _ in listed}
    found = [(p, "embeddings_dir file") for p in in_dir(cfg.embeddings_dir, [cfg.prompt, cfg.negative_prompt])
             if p.resolve() not in named]
    family = info.family
    if (listed or found) and family.denoiser != "unet":
        raise UserError(f"{(listed or found)[0][1]} {(listed or found)[0][0]}: textual-inversion embeddings load into "
                        f"UNet models' text encoders here; {family.label} models take none yet.")
    widths = {name: info.configs[name].get("hidden_size") for _, name in family.text_pairs}
    embeddings = [read_embedding(path, key, cfg.model.allow_pickle, widths, family.label)
                  for path, key in listed + found]
    if embeddings:
        folder = info.config_dir or info.path  # a checkpoint file's tokenizer is in its configs
        tokenizers = [family.part(name).loader.from_pretrained(folder, subfolder=name) for name, _ in family.text_pairs]
        check_tokens(embeddings, tokenizers)
    return embeddings


def addon_fields(loras: list[Lora], embeddings: list[Embedding]) -> dict[str, str]:
    """What A1111 writes into an image's parameters for its add-ons: `Lora hashes` and `TI hashes` ("name: hash,
    ..."), and `Hashes`, the same as JSON keyed lora:NAME / embed:NAME (the form readers such as sd-parsers take)."""
    lora_hashes = {lora.path.stem: addnet_hash(str(lora.path)) for lora in loras}
    ti_hashes = {emb.token: file_hash(str(emb.path)) for emb in embeddings}
    fields = {}
    for key, hashes in (("Lora hashes", lora_hashes), ("TI hashes", ti_hashes)):
        if hashes:
            fields[key] = '"' + ", ".join(f"{name}: {h}" for name, h in hashes.items()) + '"'
    joined = {f"lora:{n}": h for n, h in lora_hashes.items()} | {f"embed:{n}": h for n, h in ti_hashes.items()}
    if joined:
        fields["Hashes"] = json.dumps(joined)
    return fields
