"""Prompt encoding: CLIP tokens padded or cut to the tokenizer's 77, then the text encoder's last hidden state."""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass

import torch

log = logging.getLogger("pipeline")


@dataclass
class TextEmbeddings:
    """Conditional embeddings, and the unconditional ones when classifier-free guidance runs."""

    cond: torch.Tensor
    uncond: torch.Tensor | None = None


def truncated_text(tokenizer, prompt: str) -> str:
    """The words of a prompt that fall past the tokenizer's limit, as diffusers reports them ('' if none)."""
    limit = tokenizer.model_max_length
    ids = tokenizer(prompt).input_ids
    if len(ids) <= limit:
        return ""
    return tokenizer.decode(ids[limit - 1 : -1])


def closed_vocabulary(tokenizer) -> bool:
    """True for a word-level vocabulary (like the shipped model's): it cannot spell a word letter by letter."""
    vocab = tokenizer.get_vocab()
    return not all(letter in vocab for letter in string.ascii_lowercase)


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Words the model cannot read: ones that hit the unknown token, or, in a word-level vocabulary,
    ones that are not a single token of it (they would be spelled from pieces of other words)."""
    unk, closed = tokenizer.unk_token_id, closed_vocabulary(tokenizer)
    words = []
    for word in prompt.split():
        cleaned = word.strip(".,;:!?\"'()").lower()
        ids = tokenizer(cleaned, add_special_tokens=False).input_ids if cleaned else []
        if unk in ids or (closed and len(ids) > 1):
            words.append(cleaned)
    return words


def warn_about_prompt(tokenizer, prompt: str, key: str) -> None:
    """Log a warning naming the words that will be dropped or not understood."""
    cut = truncated_text(tokenizer, prompt)
    if cut:
        log.warning(f"{key} is longer than {tokenizer.model_max_length} tokens; these words are dropped: {cut}")
    unknown = unknown_words(tokenizer, prompt)
    if unknown:
        log.warning(f"{key} has words the model's vocabulary does not know: {', '.join(unknown)}")


@torch.no_grad()
def encode_text(tokenizer, text_encoder, texts: list[str], device: torch.device) -> torch.Tensor:
    """Embeddings for a list of texts: padded to model_max_length, truncated past it, last hidden state."""
    tokens = tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    hidden = text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
    return hidden.to(dtype=text_encoder.dtype, device=device)


def encode_prompt(
    tokenizer, text_encoder, prompt: str, negative_prompt: str, count: int, guided: bool, device: torch.device
) -> TextEmbeddings:
    """Encode the prompt (and, when guided, the negative prompt as the unconditional text) for `count` images."""
    cond = encode_text(tokenizer, text_encoder, [prompt], device).repeat(count, 1, 1)
    if not guided:
        return TextEmbeddings(cond)
    uncond = encode_text(tokenizer, text_encoder, [negative_prompt], device).repeat(count, 1, 1)
    return TextEmbeddings(cond, uncond)
