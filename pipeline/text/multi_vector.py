"""A multi-vector textual-inversion token spelled out in a prompt, so each of its vectors gets a position."""

from __future__ import annotations

from diffusers.loaders.textual_inversion import TextualInversionLoaderMixin

from pipeline.common.file_checks import quietly


class _Spelling(TextualInversionLoaderMixin):
    """diffusers' prompt conversion for textual inversion, without a pipeline around it."""


def expand_tokens(text: str, tokenizer) -> str:
    """A prompt with each multi-vector token spelled out as `name name_1 ...` (diffusers' maybe_convert_prompt);
    the text itself when no embedding was added (the tokenizer's own special tokens are not embeddings)."""
    if not set(getattr(tokenizer, "added_tokens_encoder", {})) - set(tokenizer.all_special_tokens):
        return text
    with quietly():  # it tokenizes the whole prompt, which may be longer than 77 tokens: no warning for that
        return _Spelling().maybe_convert_prompt(text, tokenizer)
