"""Textual-inversion embeddings (A1111 .pt/.safetensors, diffusers' single-key files, several vectors each) put onto
the tokenizer and text encoder with diffusers' own loader; the file name is the token, as in A1111."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.loaders.textual_inversion import TextualInversionLoaderMixin, load_textual_inversion_state_dicts

from pipeline.common.errors import UserError, first_line
from pipeline.common.file_checks import check_file, quietly

SUFFIXES = (".safetensors", ".pt", ".bin")


class _Loader(TextualInversionLoaderMixin):
    """diffusers' textual-inversion loader on parts we loaded ourselves (no pipeline: nothing offloaded)."""

    hf_device_map = None
    components: dict = {}


@dataclass
class Embedding:
    """One embedding file: its token (the file name) and its vectors, read and checked before loading."""

    token: str
    path: Path
    vectors: torch.Tensor


def in_dir(embeddings_dir: str, texts: list[str]) -> list[Path]:
    """The files of embeddings_dir whose name (the token) appears as a word in any of the texts."""
    folder = Path(embeddings_dir)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
    return [p for p in files if any(re.search(rf"(?<![\w-]){re.escape(p.stem)}(?![\w-])", t) for t in texts)]


def read_embedding(path: Path, key: str, allow_pickle: bool, width: int) -> Embedding:
    """An embedding file's vectors (n, width), through diffusers' reader; one sentence when it cannot be used."""
    check_file(path, key, SUFFIXES, allow_pickle)
    try:
        with quietly():
            state = load_textual_inversion_state_dicts([str(path)], weight_name=path.name,
                                                       use_safetensors=path.suffix == ".safetensors")[0]
            _, vectors = _Loader._retrieve_tokens_and_embeddings([path.stem], [state], _NoVocab())
    except Exception as err:
        raise UserError(f"{key} {path} is not an embedding file diffusers can read ({first_line(err)}).") from None
    vectors = vectors[0].reshape(-1, vectors[0].shape[-1])
    if len(vectors) == 0:
        raise UserError(f"{key} {path} holds no vectors (its tensor has 0 rows); it is not a usable embedding.")
    if vectors.shape[-1] != width:
        raise UserError(f"{key} {path} holds vectors of width {vectors.shape[-1]}, but this model's text encoder "
                        f"takes {width}; it was made for another model.")
    return Embedding(path.stem, path, vectors)


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


def apply_embeddings(embeddings: list[Embedding], tokenizer, text_encoder) -> None:
    """Add each token (and name_1, name_2... for more vectors) to the tokenizer and its vectors to the encoder."""
    if not embeddings:
        return
    with quietly():
        _Loader().load_textual_inversion([e.vectors for e in embeddings], token=[e.token for e in embeddings],
                                         tokenizer=tokenizer, text_encoder=text_encoder)


@functools.lru_cache(maxsize=64)
def file_hash(path: str) -> str:
    """A1111's short hash of an embedding file: sha256 of the file, first 12 hex digits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
