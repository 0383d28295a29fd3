"""The SDXL-format sibling's first text encoder, fitted to what the base's UNet reads. SDXL's pipelines feed the UNet
each encoder's penultimate hidden states, without the final layer norm (diffusers' StableDiffusionXLPipeline.
encode_prompt: `hidden_states[-2]`); the base was trained on its encoder's last, layer-normed ones. So the first
encoder is the base's with one more layer (an exact identity at first: its attention output and second MLP layer
zero), which puts the base's last layer's output at the penultimate place, and is then trained briefly so that this
output matches the base's layer-normed features on the recipe's captions. With it, the grown UNet starts near the
base's behaviour and its training can go to SDXL's conditioning instead of relearning the text."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers import CLIPTextModel

from pipeline.lab.shapes.checkpoint import cosine_lr


def deeper_encoder(base: CLIPTextModel) -> CLIPTextModel:
    """The base encoder with one more layer, a copy of its last with the residual branches' outputs zeroed: the same
    hidden states, one more of them (the penultimate is the base's last layer's output)."""
    config = copy.deepcopy(base.config)
    config.num_hidden_layers += 1
    deeper = CLIPTextModel(config)
    state = base.state_dict()
    count = base.config.num_hidden_layers
    prefix = next(k for k in state if "encoder.layers." in k).split("encoder.layers.")[0]  # "text_model." or ""
    last, new = f"{prefix}encoder.layers.{count - 1}.", f"{prefix}encoder.layers.{count}."
    state.update({new + key[len(last):]: value.clone() for key, value in list(state.items()) if key.startswith(last)})
    for part in ("self_attn.out_proj", "mlp.fc2"):
        state[f"{new}{part}.weight"].zero_()
        state[f"{new}{part}.bias"].zero_()
    deeper.load_state_dict(state)
    return deeper


def penultimate(encoder: CLIPTextModel, ids: torch.Tensor) -> torch.Tensor:
    """What SDXL's pipelines read from an encoder: its penultimate hidden states."""
    return encoder(ids, output_hidden_states=True).hidden_states[-2]


def align_first_encoder(base: CLIPTextModel, batches, steps: int, lr: float) -> tuple[CLIPTextModel, float, float]:
    """The deeper encoder trained `steps` steps (cosine rate from `lr`) so that its penultimate hidden states match
    the base's last, layer-normed ones on the captions `batches(step)` gives; with the mean squared error before and
    after, for the log."""
    encoder = deeper_encoder(base).train()
    base = base.eval().requires_grad_(False)
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=0.0)
    errors = []
    for step in range(steps):
        ids = batches(step)
        with torch.no_grad():
            target = base(ids).last_hidden_state
        loss = F.mse_loss(penultimate(encoder, ids), target)
        for group in optimiser.param_groups:
            group["lr"] = lr * cosine_lr(step, steps, 0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        errors.append(loss.item())
    return encoder, errors[0] if errors else float("nan"), errors[-1] if errors else float("nan")
