"""Prompt syntaxes: how a prompt's text becomes the text encoder's input (A1111 emphasis and chunks, compel, none)."""

from __future__ import annotations

import torch

from pipeline.text.attention import parse_attention
from pipeline.text.chunks import make_chunks
from pipeline.text.chunk_embeddings import LAST, Reading, encode_chunks, pad_to

SYNTAXES = ("a1111", "compel", "none")  # the config's prompt_syntax; a1111 is the default, as users write prompts


def encode_a1111(tokenizer, text_encoder, texts: list[str], clip_skip: int, device: torch.device,
                 reading: Reading = LAST, length: int = 0) -> list[torch.Tensor]:
    """Each text parsed for emphasis and BREAK, chunked by 75 tokens and encoded; all padded to the longest (or to
    `length` tokens, when longer) with an empty prompt's chunk."""
    encoded = [encode_chunks(text_encoder, make_chunks(tokenizer, parse_attention(t)), clip_skip, device, reading)
               for t in texts]
    longest = max(length, *(z.shape[1] for z in encoded))
    if all(z.shape[1] == longest for z in encoded):
        return encoded
    empty = encode_chunks(text_encoder, make_chunks(tokenizer, parse_attention("")), clip_skip, device, reading)
    return [pad_to(z, longest, empty) for z in encoded]


def compel_for(tokenizer, text_encoder, device: torch.device, reading: Reading = LAST, pooled: bool = False):
    """A compel instance for one text encoder: its own weighting syntax, long prompts kept; SDXL's encoders give
    their penultimate layer raw and the second its pooled output too (as compel's CompelForSDXL sets them up)."""
    from compel import Compel, ReturnedEmbeddingsType

    kind = (ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED if reading == LAST
            else ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED)
    return Compel(tokenizer=tokenizer, text_encoder=text_encoder, truncate_long_prompts=False, device=str(device),
                  returned_embeddings_type=kind, requires_pooled=pooled)


def encode_compel(tokenizer, text_encoder, texts: list[str], device: torch.device,
                  reading: Reading = LAST) -> list[torch.Tensor]:
    """Each text through the compel library, padded to one length."""
    compel = compel_for(tokenizer, text_encoder, device, reading)
    with torch.no_grad():
        encoded = [compel(t) for t in texts]
        return list(compel.pad_conditioning_tensors_to_same_length(encoded))
