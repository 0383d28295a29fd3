"""Textual-inversion embeddings (A1111 .pt/.safetensors, diffusers' single-key files, several vectors each; SDXL's
clip_l and clip_g tensors, one per text encoder) put onto each tokenizer and text encoder with diffusers' own loader;
the file name is the token, as in A1111."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers.loaders.textual_inversion import TextualInversionLoaderMixin, load_textual_inversion_state_dicts

from pipeline.common.errors import UserError, first_line
from pipeline.common.file_checks import check_file, quietly

if TYPE_CHECKING:  # the jobs planner imports this module; it need not load the components module
    from pipeline.models.components import Components

SUFFIXES = (".safetensors", ".pt", ".bin")
SDXL_KEYS = {"text_encoder": "clip_l", "text_encoder_2": "clip_g"}  # an SDXL file's tensor for each encoder


class _Loader(TextualInversionLoaderMixin):
    """diffusers' textual-inversion loader on parts we loaded ourselves (no pipeline: nothing offloaded)."""

    hf_device_map = None
    components: dict = {}


@dataclass
class Embedding:
    """One embedding file: its token (the file name) and its vectors, an (n, width) tensor for each text encoder of
    the model (by part name), read and checked before loading."""

    token: str
    path: Path
    vectors: dict[str, torch.Tensor]


def in_dir(embeddings_dir: str, texts: list[str]) -> list[Path]:
    """The files of embeddings_dir whose name (the token) appears as a word in any of the texts."""
    folder = Path(embeddings_dir)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
    return [p for p in files if any(re.search(rf"(?<![\w-]){re.escape(p.stem)}(?![\w-])", t) for t in texts)]


def read_embedding(path: Path, key: str, allow_pickle: bool, encoders: dict[str, int], label: str) -> Embedding:
    """An embedding file's vectors for each text encoder (part name -> width), through diffusers' reader: SDXL's
    clip_l/clip_g tensors for text_encoder/text_encoder_2, else the one tensor; one sentence when it cannot be used."""
    check_file(path, key, SUFFIXES, allow_pickle)
    try:
        with quietly():
            state = load_textual_inversion_state_dicts([str(path)], weight_name=path.name,
                                                       use_safetensors=path.suffix == ".safetensors")[0]
    except Exception as err:
        raise UserError(f"{key} {path} is not an embedding file diffusers can read ({first_line(err)}).") from None
    held = [name for name in SDXL_KEYS.values() if isinstance(state, dict) and name in state]
    if "text_encoder_2" in encoders:
        found = _sdxl_vectors(state, held, list(encoders), label, f"{key} {path}")
    elif held:
        raise UserError(f"{key} {path} holds SDXL vectors ({' and '.join(held)}, one set per text encoder), but this "
                        f"{label} model has one text encoder; it was made for Stable Diffusion XL.")
    else:
        found = {name: ("", _single(state, path, key)) for name in encoders}
    vectors = {name: _checked(v, name, what, encoders[name], f"{key} {path}") for name, (what, v) in found.items()}
    if len({len(v) for v in vectors.values()}) > 1:
        counts = " and ".join(f"{len(vectors[name])} {what}" for name, (what, _) in found.items())
        raise UserError(f"{key} {path} holds {counts} vectors; its token would be a different number of tokens for "
                        "each text encoder.")
    return Embedding(path.stem, path, vectors)


def _sdxl_vectors(state: dict, held: list[str], encoders: list[str], label: str, where: str) -> dict:
    """Each encoder's (file key, tensor) of an SDXL file; a file without them all is one sentence."""
    wanted = [SDXL_KEYS[name] for name in encoders]
    if not set(wanted) <= set(held):
        what = f"{' and '.join(held)} vectors only" if held else "one set of vectors (for one text encoder)"
        raise UserError(f"{where} holds {what}, but this {label} model needs {' and '.join(wanted)} vectors, one "
                        "set per text encoder; it was made for another model.")
    return {name: (SDXL_KEYS[name], state[SDXL_KEYS[name]]) for name in encoders}


def _single(state, path: Path, key: str) -> torch.Tensor:
    """The one tensor of a one-encoder file (A1111's string_to_param or emb_params, diffusers' single key)."""
    try:
        with quietly():
            _, vectors = _Loader._retrieve_tokens_and_embeddings([path.stem], [state], _NoVocab())
    except Exception as err:
        raise UserError(f"{key} {path} is not an embedding file diffusers can read ({first_line(err)}).") from None
    return vectors[0]


def _checked(vectors: torch.Tensor, encoder: str, what: str, width: int, where: str) -> torch.Tensor:
    """The vectors as (n, width) rows; none, or another width than the encoder's, is one sentence."""
    vectors = vectors.reshape(-1, vectors.shape[-1])
    name = f"{what} " if what else ""
    if len(vectors) == 0:
        raise UserError(f"{where} holds no {name}vectors (its tensor has 0 rows); it is not a usable embedding.")
    if vectors.shape[-1] != width:
        part = encoder if what else "text encoder"
        raise UserError(f"{where} holds {name}vectors of width {vectors.shape[-1]}, but this model's {part} takes "
                        f"{width}; it was made for another model.")
    return vectors


class _NoVocab:
    """A stand-in tokenizer with an empty vocabulary: reading a file does not need the real one."""

    def get_vocab(self) -> dict:
        return {}


def known_word(tokenizer, token: str) -> bool:
    """Whether the tokenizer already reads the name as one token of its own vocabulary: the name as stored
    (`red`, or BPE's end-of-word form `red</w>`) or as its tokenization gives it (lower-cased, one known id)."""
    vocabulary = tokenizer.get_vocab()
    if token in vocabulary or f"{token}</w>" in vocabulary:
        return True
    ids = tokenizer(token, add_special_tokens=False, verbose=False).input_ids
    return len(ids) == 1 and ids[0] != tokenizer.unk_token_id


def check_tokens(embeddings: list[Embedding], tokenizers: list) -> None:
    """Each token is new to every tokenizer of the model and used once (A1111: the file name is the token); a
    token that is a word already would silently take that word's place in every prompt."""
    seen: set[str] = set()
    for emb in embeddings:
        if any(known_word(t, emb.token) or f"{emb.token}_1" in t.get_vocab() for t in tokenizers):
            raise UserError(f"embedding {emb.path}: its token '{emb.token}' is already a word of this model's "
                            "tokenizer; rename the file.")
        if emb.token in seen:
            raise UserError(f"embedding {emb.path}: the token '{emb.token}' is given twice.")
        seen.add(emb.token)


def add_embeddings(embeddings: list[Embedding], components: Components) -> None:
    """Add each token (and name_1, name_2... for more vectors) to every tokenizer of the loaded model, and its
    vectors for that pair's text encoder to the encoder (an SDXL refiner takes the clip_g ones)."""
    if not embeddings:
        return
    with quietly():
        for tokenizer, text_encoder in components.family.text_pairs:
            _Loader().load_textual_inversion([e.vectors[text_encoder] for e in embeddings],
                                             token=[e.token for e in embeddings], tokenizer=components.parts[tokenizer],
                                             text_encoder=components.parts[text_encoder])


@functools.lru_cache(maxsize=64)
def file_hash(path: str) -> str:
    """A1111's short hash of an embedding file: sha256 of the file, first 12 hex digits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
