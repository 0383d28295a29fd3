"""CLIP's BPE tokenizer files (vocab.json, merges.txt) derived from the merge list OpenAI published with CLIP.

Stable Diffusion 1.x and 2.x use the same 49408-token vocabulary: 256 byte characters, their end-of-word forms,
one token per merge (the first 48894 merges of `bpe_simple_vocab_16e6.txt.gz`, as OpenAI's and open_clip's
tokenizers read it), then the start and end tokens. The merge list ships in the `open_clip_torch` wheel on PyPI;
`scripts/make_clip_tokenizer.py` writes the files kept in `configs/single_file/tokenizer/`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from pipeline.tiny_model import byte_vocabulary

MERGES = 49152 - 256 - 2  # CLIP's vocabulary size minus bytes and specials, as OpenAI's tokenizer counts them
SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def read_merges(bpe_gz: Path) -> list[str]:
    """The merges CLIP uses: the file's lines after its version line, the first MERGES of them."""
    lines = gzip.decompress(bpe_gz.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:MERGES + 1]
    if len(merges) != MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{bpe_gz} does not hold CLIP's {MERGES} merges")
    return merges


def vocabulary(merges: list[str]) -> dict[str, int]:
    """Token -> id in CLIP's order."""
    chars = byte_vocabulary()
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m.split()) for m in merges), *SPECIALS]
    return {token: index for index, token in enumerate(tokens)}


def write_clip_files(bpe_gz: Path, folder: Path) -> int:
    """Write vocab.json and merges.txt in the layout transformers' CLIPTokenizer reads; return the vocabulary size."""
    merges = read_merges(bpe_gz)
    vocab = vocabulary(merges)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)
