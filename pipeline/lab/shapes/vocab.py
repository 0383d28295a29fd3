"""A word-level CLIP tokenizer for the world's captions, as CLIP's vocab.json + merges.txt."""

import json
from pathlib import Path

from transformers import CLIPTokenizer

from pipeline.lab.shapes.captions import words

START, END = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


def build_vocab(known: list[str]) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges that make each known word exactly one token 'word</w>'.

    CLIP's BPE only ever merges into a piece ending in '</w>' here, so words are built right to
    left from their last character and no merge can stop a known word half-way.
    """
    vocab: dict[str, int] = {START: 0, END: 1}
    merges: list[str] = []

    def add(piece: str) -> None:
        vocab.setdefault(piece, len(vocab))

    for word in known:
        suffix = word[-1] + "</w>"
        add(suffix)
        for char in reversed(word[:-1]):
            add(char)
            merge = f"{char} {suffix}"
            if merge not in merges:
                merges.append(merge)
            suffix = char + suffix
            add(suffix)
    return vocab, merges


def save_tokenizer(folder: Path, known: list[str] | None = None) -> CLIPTokenizer:
    """Write vocab.json, merges.txt and the tokenizer config into `folder`; return the tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab(words() if known is None else known)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=1))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_LENGTH
    )
    tokenizer.save_pretrained(str(folder))
    return CLIPTokenizer.from_pretrained(str(folder))
