"""Token chunks -> embeddings: clip skip, A1111's "Original" emphasis, and padding cond and uncond to one length."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pipeline.text.chunks import Chunk

log = logging.getLogger("pipeline")


def final_layer_norm(text_encoder) -> torch.nn.Module:
    """The CLIP text encoder's last layer norm (transformers 5 keeps it on the model, 4.x under `text_model`)."""
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


def layer_count(text_encoder_config) -> int:
    """How many transformer layers a CLIP text encoder has: the largest clip skip it allows."""
    return text_encoder_config.num_hidden_layers


@dataclass(frozen=True)
class Reading:
    """Which hidden state a family reads from a CLIP text encoder at clip skip n, and whether a layer before the last
    goes through the final layer norm (docs/prompt-syntax.md, "Clip skip")."""

    skipped: int = 0  # layers already skipped at clip skip 1: 0 for SD 1.x and 2.x, 1 for SDXL (the penultimate)
    normed: bool = True  # SD 1.x/2.x as A1111 reads them; SDXL reads its layers raw, as diffusers and A1111 do


LAST = Reading()
PENULTIMATE = Reading(skipped=1, normed=False)


@torch.no_grad()
def hidden_states(text_encoder, ids: torch.Tensor, mask: torch.Tensor | None, clip_skip: int,
                  reading: Reading = LAST) -> torch.Tensor:
    """Clip skip n reads the (n + reading.skipped)-th hidden state from the end: for SD 1.x/2.x (A1111's numbering)
    1 is CLIP's last_hidden_state and n an earlier layer through the final layer norm; for SDXL 1 is the penultimate
    layer, raw, as SDXL was trained."""
    if clip_skip == 1 and reading.skipped == 0:
        return text_encoder(ids, attention_mask=mask)[0]
    out = text_encoder(ids, attention_mask=mask, output_hidden_states=True)
    state = out.hidden_states[-(clip_skip + reading.skipped)]
    return final_layer_norm(text_encoder)(state) if reading.normed else state


# A mean is "near zero" below this share of the values' mean magnitude: dividing by it would make the restored chunk
# huge or infinite (the last digits of the float rounding decide it), so the mean is not restored then.
NEAR_ZERO_MEAN = 1e-3


def well_defined_mean(z: torch.Tensor) -> bool:
    """Whether a chunk's mean is far enough from zero, for its values' size, to divide by or scale to."""
    return bool(z.mean().abs() >= NEAR_ZERO_MEAN * z.abs().mean())


def emphasise(z: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """A1111's "Original" emphasis: scale each position by its weight, then restore the chunk's mean. Where either
    mean is near zero (NEAR_ZERO_MEAN: A1111's quotient is then rounding noise, up to inf) the chunk keeps the
    scaled values, A1111's "No norm"; computed in float32, so finite input with finite weights stays finite."""
    if all(w == 1.0 for w in weights):
        return z
    z32 = z.float()
    scaled = z32 * torch.tensor(weights, dtype=torch.float32, device=z.device)[None, :, None]
    if not (well_defined_mean(z32) and well_defined_mean(scaled)):
        log.info("emphasis: a chunk's mean is near zero, so it is scaled without restoring the mean (A1111's No norm)")
        return scaled.to(z.dtype)
    return (scaled * (z32.mean() / scaled.mean())).to(z.dtype)


def encode_chunks(text_encoder, chunks: list[Chunk], clip_skip: int, device: torch.device,
                  reading: Reading = LAST) -> torch.Tensor:
    """Each chunk through the encoder on its own, emphasised, then joined along the token axis: (1, 77 * n, width)."""
    use_mask = getattr(text_encoder.config, "use_attention_mask", False)
    parts = []
    for chunk in chunks:
        ids = torch.tensor([chunk.ids], device=device)
        mask = torch.tensor([chunk.mask], device=device) if use_mask else None
        parts.append(emphasise(hidden_states(text_encoder, ids, mask, clip_skip, reading), chunk.weights))
    return torch.cat(parts, dim=1).to(dtype=text_encoder.dtype, device=device)


def pad_to(z: torch.Tensor, length: int, empty: torch.Tensor) -> torch.Tensor:
    """Embeddings grown to `length` positions with copies of an empty prompt's chunk (as A1111 pads the shorter of
    prompt and negative prompt)."""
    missing = (length - z.shape[1]) // empty.shape[1]
    return torch.cat([z, empty.repeat(1, missing, 1)], dim=1) if missing > 0 else z
