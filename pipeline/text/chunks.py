"""Weighted fragments -> CLIP token chunks of 75 (A1111's long prompts): each chunk is encoded on its own, as
[start] + up to 75 tokens + [end] + padding, with a weight per position (1.0 on the special tokens and padding)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.text.attention import Fragment

COMMA_BACKTRACK = 20  # A1111's default "prompt word wrap length limit": text after a chunk's last comma shorter
# than this moves to the next chunk when the chunk fills


@dataclass
class Chunk:
    """One encoder call's input: token ids, a weight per id and the attention mask, each model_max_length long."""

    ids: list[int]
    weights: list[float]
    mask: list[int]


def room(tokenizer) -> int:
    """Tokens a chunk holds between its start and end tokens (75 for CLIP's 77)."""
    return tokenizer.model_max_length - 2


def _finish(tokenizer, tokens: list[int], weights: list[float]) -> Chunk:
    """Wrap a chunk's tokens as the tokenizer itself would: start, tokens, end, then padding (diffusers' layout)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    fill = room(tokenizer) - len(tokens)
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id] + [pad] * fill
    return Chunk(ids, [1.0, *weights, 1.0] + [1.0] * fill, [1] * (len(tokens) + 2) + [0] * fill)


def make_chunks(tokenizer, fragments: list[Fragment]) -> list[Chunk]:
    """Split the fragments' tokens into chunks: a BREAK ends one; when one fills, the tokens after its last comma,
    if fewer than COMMA_BACKTRACK, move to the next. Always at least one chunk."""
    limit, comma = room(tokenizer), tokenizer.get_vocab().get(",</w>")
    chunks: list[Chunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close(carry: int = 0) -> None:
        nonlocal tokens, weights, last_comma
        keep = len(tokens) - carry
        chunks.append(_finish(tokenizer, tokens[:keep], weights[:keep]))
        tokens, weights, last_comma = tokens[keep:], weights[keep:], -1

    for fragment in fragments:
        if fragment.is_break:
            close()
            continue
        for token in tokenizer(fragment.text, add_special_tokens=False, verbose=False).input_ids:
            if len(tokens) == limit:
                after = limit - 1 - last_comma
                close(after if last_comma >= 0 and after < COMMA_BACKTRACK and token != comma else 0)
            if token == comma:
                last_comma = len(tokens)
            tokens.append(token)
            weights.append(fragment.weight)
    if tokens or not chunks:
        close()
    return chunks
