"""Text encoders in pairs (SDXL's CLIP ViT-L and OpenCLIP ViT-bigG): both read the same text, their hidden states are
joined on the feature axis, and the last encoder's projected pooled output sums the text up (diffusers'
StableDiffusionXLPipeline.encode_prompt; A1111 and compel do the same with their own syntaxes)."""

from __future__ import annotations

import torch

from pipeline.text.attention import parse_attention
from pipeline.text.chunk_embeddings import PENULTIMATE
from pipeline.text.chunks import make_chunks
from pipeline.text.encoding import encode_texts
from pipeline.text.multi_vector import expand_tokens
from pipeline.text.syntaxes import compel_for
from pipeline.text.tags import strip_tags


@torch.no_grad()
def pooled_output(tokenizer, text_encoder, text: str, syntax: str, device: torch.device) -> torch.Tensor:
    """A CLIP text encoder's pooled output for a text: the projected one of a CLIPTextModelWithProjection (SDXL,
    SD3), the pooler output of a plain CLIPTextModel (FLUX); of its first 75-token chunk without the emphasis (A1111
    pools the first chunk), of what compel pools, or of its 77 tokens (none)."""
    text = expand_tokens(strip_tags(text), tokenizer)
    if syntax == "compel":
        return compel_for(tokenizer, text_encoder, device, PENULTIMATE, pooled=True)(text)[1]
    if syntax == "a1111":
        ids = torch.tensor([make_chunks(tokenizer, parse_attention(text))[0].ids])
    else:
        ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
    output = text_encoder(ids.to(device))
    return output.text_embeds if hasattr(output, "text_embeds") else output.pooler_output


def encode_pairs(pairs: list[tuple], texts: list[str], device: torch.device, syntax: str, clip_skip: int,
                 keys: list[str], pool_each: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """([hidden states], [pooled outputs]) of each text: every pair's hidden states (the penultimate layer at clip
    skip 1) joined on the feature axis, the pooled output from the last pair (SDXL) or every pair's joined
    (`pool_each`: SD3's pooled projection reads both CLIPs')."""
    encoded = [encode_texts(tok, enc, texts, device, syntax, clip_skip, keys, PENULTIMATE) for tok, enc in pairs]
    longest = max(z.shape[1] for per_text in encoded for z in per_text)
    if any(z.shape[1] != longest for per_text in encoded for z in per_text):  # a1111's chunks, counted per tokenizer
        encoded = [encode_texts(tok, enc, texts, device, syntax, clip_skip, keys, PENULTIMATE, longest)
                   for tok, enc in pairs]
    dtype = pairs[-1][1].dtype
    hidden = [torch.cat([per_text[i] for per_text in encoded], dim=-1).to(dtype) for i in range(len(texts))]
    pooling = pairs if pool_each else pairs[-1:]
    pooled = [torch.cat([pooled_output(tok, enc, text, syntax, device) for tok, enc in pooling], dim=-1).to(dtype)
              for text in texts]
    return hidden, pooled
