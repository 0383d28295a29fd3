"""The T5 encoder's side of a prompt (SD3's third encoder, FLUX's sequence): the text padded to a fixed number of
tokens and truncated past it, as diffusers' `_get_t5_prompt_embeds` reads it. `<lora:...>` tags are removed; with
the a1111 syntax T5 reads the words without their weights (the CLIP encoders beside it take the weights)."""

from __future__ import annotations

import logging

import torch

from pipeline.engine.nonfinite import NonFiniteError
from pipeline.text.attention import parse_attention, plain_text
from pipeline.text.encoding import shorten
from pipeline.text.tags import strip_tags

log = logging.getLogger("pipeline")


def t5_text(text: str, syntax: str) -> str:
    """What T5 reads of a prompt: without tags, and without the a1111 syntax's brackets and weights."""
    text = strip_tags(text)
    return plain_text(parse_attention(text)) if syntax == "a1111" else text


def t5_token_count(tokenizer, text: str) -> int:
    """The prompt's T5 tokens, its end token included."""
    return len(tokenizer(text, truncation=False).input_ids)


@torch.no_grad()
def encode_t5(tokenizer, encoder, texts: list[str], device: torch.device, syntax: str, length: int,
              keys: list[str]) -> list[torch.Tensor]:
    """Each text's T5 states, (1, length, d_model); a text longer than `length` tokens is cut there, with a warning
    naming the key and how many tokens were dropped."""
    states = []
    for key, text in zip(keys, texts):
        text = t5_text(text, syntax)
        count = t5_token_count(tokenizer, text)
        if count > length:
            log.warning(f"{key} is {count} T5 tokens; the T5 encoder reads the first {length} (max_sequence_length), "
                        f"so the rest of '{shorten(text)}' is dropped for it.")
        ids = tokenizer([text], padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                        return_tensors="pt").input_ids
        z = encoder(ids.to(device))[0]
        if not torch.isfinite(z).all():
            raise NonFiniteError(f"the T5 encoder's states for {key} are not finite (NaN or inf): in float16 T5 "
                                 "overflows; set model.dtype to bfloat16 or float32.")
        states.append(z)
    return states
