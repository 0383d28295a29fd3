"""The T5 encoder's side of a prompt (SD3's third encoder, FLUX's sequence): the text padded to a fixed number of
tokens and truncated past it, as diffusers' `_get_t5_prompt_embeds` reads it. `<lora:...>` tags are removed. With
the a1111 syntax, a prompt without weights is tokenized whole (exactly diffusers' ids); one with weights is tokenized
fragment by fragment, each token carrying its fragment's weight, and T5's states get A1111's "Original" emphasis
(scaled by the weights, the mean restored), as Forge weights T5 for FLUX. BREAK means nothing to T5 (a space)."""

from __future__ import annotations

import logging

import torch

from pipeline.engine.nonfinite import NonFiniteError
from pipeline.text.attention import parse_attention, plain_text
from pipeline.text.chunk_embeddings import emphasise
from pipeline.text.encoding import shorten
from pipeline.text.tags import strip_tags

log = logging.getLogger("pipeline")


def t5_text(text: str, syntax: str) -> str:
    """What T5 reads of a prompt: without tags, and without the a1111 syntax's brackets and weights."""
    text = strip_tags(text)
    return plain_text(parse_attention(text)) if syntax == "a1111" else text


def weighted_ids(tokenizer, text: str, syntax: str, length: int) -> tuple[list[int], list[float], int]:
    """(ids, weights, token count before the cut) of a prompt for T5, padded or cut to `length` with the end token
    kept last."""
    text = strip_tags(text)
    fragments = [f for f in parse_attention(text) if not f.is_break and f.text.strip()] if syntax == "a1111" else []
    if all(f.weight == 1.0 for f in fragments):
        plain = t5_text(text, syntax)
        count = len(tokenizer(plain, truncation=False).input_ids)
        ids = tokenizer(plain, padding="max_length", max_length=length, truncation=True).input_ids
        return ids, [1.0] * length, count
    ids, weights = [], []
    for fragment in fragments:
        piece = tokenizer(fragment.text, add_special_tokens=False).input_ids
        ids, weights = ids + piece, weights + [fragment.weight] * len(piece)
    count = len(ids) + 1
    ids, weights = ids[:length - 1] + [tokenizer.eos_token_id], weights[:length - 1] + [1.0]
    padding = length - len(ids)
    return ids + [tokenizer.pad_token_id] * padding, weights + [1.0] * padding, count


@torch.no_grad()
def encode_t5(tokenizer, encoder, texts: list[str], device: torch.device, syntax: str, length: int,
              keys: list[str]) -> list[torch.Tensor]:
    """Each text's T5 states, (1, length, d_model), emphasised by its weights; a text longer than `length` tokens
    is cut there, with a warning naming the key and how many tokens it has."""
    states = []
    for key, text in zip(keys, texts):
        ids, weights, count = weighted_ids(tokenizer, text, syntax, length)
        if count > length:
            log.warning(f"{key} is {count} T5 tokens; the T5 encoder reads the first {length} (max_sequence_length), "
                        f"so the rest of '{shorten(t5_text(text, syntax))}' is dropped for it.")
        z = emphasise(encoder(torch.tensor([ids], device=device))[0], weights)
        if not torch.isfinite(z).all():
            raise NonFiniteError(f"the T5 encoder's states for {key} are not finite (NaN or inf): in float16 T5 "
                                 "overflows; set model.dtype to bfloat16 or float32.")
        states.append(z)
    return states
