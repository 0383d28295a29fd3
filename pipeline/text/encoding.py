"""Prompt encoding: CLIP tokens padded or cut to the tokenizer's 77, then the text encoder's last hidden state; the
prompt and negative prompt become the conditioning bundle's `hidden_states` (engine/conditioning.py)."""

from __future__ import annotations

import logging
import string

import torch

from pipeline.text.syntaxes import encode_a1111, encode_compel
from pipeline.text.attention import parse_attention, plain_text
from pipeline.text.tags import strip_tags
from pipeline.text.multi_vector import expand_tokens
from pipeline.text.chunk_embeddings import LAST, Reading, hidden_states
from pipeline.engine.conditioning import Conditioning
from pipeline.engine.nonfinite import NonFiniteError, is_finite, text_failure

log = logging.getLogger("pipeline")


SHOWN_CHARS = 200  # a warning quotes at most this much of a prompt, so it stays a line or two


def token_count(tokenizer, text: str) -> int:
    """Tokens of a text without the start and end tokens (and no warning from the tokenizer about its length)."""
    return len(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)


def split_at_limit(tokenizer, prompt: str) -> tuple[list[str], list[str]]:
    """(kept, dropped): the prompt's words that fit in the tokenizer's limit, and the rest, from the word the cut
    falls in on. CLIP's tokens never span a space, so counting word by word matches the whole prompt's tokens."""
    room = tokenizer.model_max_length - 2  # the start and end tokens
    words = prompt.split()
    if token_count(tokenizer, prompt) <= room:
        return words, []
    used = 0
    for i, word in enumerate(words):
        used += token_count(tokenizer, word)
        if used > room:
            return words[:i], words[i:]
    return words, []


def shorten(text: str) -> str:
    """Text for a one-line warning: control and invisible characters escaped, cut at a space after SHOWN_CHARS."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(text) <= SHOWN_CHARS:
        return text
    cut = text[:SHOWN_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + " ..."


def closed_vocabulary(tokenizer) -> bool:
    """True for a word-level vocabulary (like the shipped model's): it cannot spell a word letter by letter."""
    vocab = tokenizer.get_vocab()
    return not all(letter in vocab for letter in string.ascii_lowercase)


def unknown_words(tokenizer, words: list[str]) -> list[str]:
    """Words the model cannot read, each once: ones that hit the unknown token, or, in a word-level vocabulary,
    ones that are not a single token of it (they would be spelled from pieces of other words)."""
    unk, closed = tokenizer.unk_token_id, closed_vocabulary(tokenizer)
    found: dict[str, None] = {}
    for word in words:
        cleaned = word.strip(".,;:!?\"'()[]+-").lower()
        ids = tokenizer(cleaned, add_special_tokens=False, verbose=False).input_ids if cleaned else []
        if unk in ids or (closed and len(ids) > 1):
            found[cleaned] = None
    return list(found)


def warn_about_prompt(tokenizer, prompt: str, key: str, syntax: str = "none") -> None:
    """Log a warning naming, as the user wrote them, the words that will be dropped (only prompt_syntax none cuts
    a prompt), and one naming the kept words the model will not understand; each is one line, however long."""
    prompt = strip_tags(prompt)
    if syntax != "none":
        kept, dropped = (plain_text(parse_attention(prompt)) if syntax == "a1111" else prompt).split(), []
    else:
        kept, dropped = split_at_limit(tokenizer, prompt)
    if dropped:
        count = "word is" if len(dropped) == 1 else f"{len(dropped)} words are"
        log.warning(f"{key} is longer than {tokenizer.model_max_length} tokens; its last {count} dropped: "
                    f"{shorten(' '.join(dropped))}")
    unknown = unknown_words(tokenizer, kept)
    if unknown:
        log.warning(f"{key} has words the model's vocabulary does not know: {shorten(', '.join(unknown))}")


@torch.no_grad()
def encode_text(tokenizer, text_encoder, texts: list[str], device: torch.device, clip_skip: int = 1,
                reading: Reading = LAST) -> torch.Tensor:
    """Embeddings for a list of texts, as diffusers' pipelines make them: padded to model_max_length, truncated past
    it, the last hidden state (or, with clip skip, an earlier layer's through the final layer norm)."""
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
    hidden = hidden_states(text_encoder, tokens.input_ids.to(device), mask, clip_skip, reading)
    return hidden.to(dtype=text_encoder.dtype, device=device)


def encode_texts(tokenizer, text_encoder, texts: list[str], device: torch.device, syntax: str = "none",
                 clip_skip: int = 1, keys: list[str] | None = None, reading: Reading = LAST,
                 length: int = 0) -> list[torch.Tensor]:
    """Each text's embeddings, read with the prompt syntax (a1111, compel, or none: diffusers' plain 77 tokens);
    all come out the same length, so any of them can stand beside (or be mixed with) any other. `<lora:...>` tags
    are not text: they are removed (pipeline/addons applies them); a multi-vector embedding's token is spelled out.
    Embeddings that are not finite raise NonFiniteError naming the text (`keys`, as the config names it) and why.
    `reading` says which layer clip skip counts from; a1111's chunks are padded to at least `length` tokens."""
    texts = [expand_tokens(strip_tags(t), tokenizer) for t in texts]
    if syntax == "a1111":
        encoded = encode_a1111(tokenizer, text_encoder, texts, clip_skip, device, reading, length)
    elif syntax == "compel":
        encoded = encode_compel(tokenizer, text_encoder, texts, device, reading)
    else:
        encoded = [encode_text(tokenizer, text_encoder, [t], device, clip_skip, reading) for t in texts]
    for key, text, z in zip(keys or ["text"] * len(texts), texts, encoded):
        if not is_finite(z):  # one reduction per text; the cause is looked for only on failure
            plain = syntax != "none" and is_finite(encode_text(tokenizer, text_encoder, [plain_text(
                parse_attention(text))], device, clip_skip, reading))  # finite without the weights: they made it overflow
            raise NonFiniteError(text_failure(key, z, tokenizer, text_encoder, plain))
    return encoded


def encode_prompt(
    tokenizer,
    text_encoder,
    prompt: str,
    negative_prompt: str,
    count: int,
    guided: bool,
    device: torch.device,
    syntax: str = "none",
    clip_skip: int = 1,
) -> Conditioning:
    """The prompt's hidden states (and, when guided, the negative prompt's as the unconditional half) for `count`
    images."""
    texts = [prompt, negative_prompt] if guided else [prompt]
    encoded = encode_texts(tokenizer, text_encoder, texts, device, syntax, clip_skip, ["prompt", "negative_prompt"])
    halves = Conditioning({"hidden_states": encoded[0]}, {"hidden_states": encoded[1]} if guided else None)
    return halves.repeat(count)
