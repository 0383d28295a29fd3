"""A text encoder built without weights and given a checkpoint's tensors, converted to diffusers' names."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import init_empty_weights


def build_text_encoder(loader: type, text_config: Any, tensors: dict, dtype: torch.dtype):
    """The encoder `loader` builds from its config, holding `tensors` (assigned, not copied), in the dtype; T5's
    encoder.embed_tokens is tied to its shared embedding, stored once, and in float16 the modules transformers keeps
    in float32 (T5's `wo`) stay there, as from_pretrained and diffusers' single-file T5 loader keep them."""
    with init_empty_weights():
        model = loader(text_config)
    if not hasattr(model, "text_model"):  # transformers' CLIPTextModel names its tensors without text_model.
        tensors = {name.removeprefix("text_model."): tensor for name, tensor in tensors.items()}
    model.load_state_dict(tensors, strict=False, assign=True)
    model.tie_weights()
    model = model.to(dtype)
    kept = (getattr(model, "_keep_in_fp32_modules", None) or []) if dtype == torch.float16 else []
    for name, parameter in model.named_parameters():
        if any(module in name.split(".") for module in kept):
            parameter.data = parameter.data.float()
    return model.eval()
