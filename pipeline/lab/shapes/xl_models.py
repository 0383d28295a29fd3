"""The SDXL-format sibling's parts, grown from the exported base: the base's text encoder as the first encoder, a
new small CLIPTextModelWithProjection as the second (its projected pooled output is SDXL's `text_embeds`), and the
base's UNet widened to read both encoders' hidden states (the new columns of every cross-attention key and value
start at zero) with SDXL's `text_time` embedding of the pooled text and the six size and crop numbers (its last
layer starts at zero): at the first step the sibling's UNet is the base's on the first encoder's features."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

TIME_ID_COUNT = 6  # original (h, w), crop (top, left), target (h, w)


def second_encoder(first: CLIPTextModel, hidden: int, projection: int) -> CLIPTextModelWithProjection:
    """A fresh second text encoder over the first's vocabulary and token ids, `hidden` wide, projecting to
    `projection`."""
    settings = first.config
    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=settings.vocab_size, hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=settings.num_hidden_layers, num_attention_heads=settings.num_attention_heads,
        max_position_embeddings=settings.max_position_embeddings, bos_token_id=settings.bos_token_id,
        eos_token_id=settings.eos_token_id, pad_token_id=settings.pad_token_id, projection_dim=projection,
    ))


def xl_unet(base: UNet2DConditionModel, second_hidden: int, pooled: int, time_embed_dim: int) -> UNet2DConditionModel:
    """The base UNet widened for SDXL's conditioning, its outputs at first those of the base."""
    kept = {key: value for key, value in base.config.items() if not key.startswith("_")}  # _use_default_values: unset
    config = {**kept, "cross_attention_dim": base.config.cross_attention_dim + second_hidden,
              "addition_embed_type": "text_time", "addition_time_embed_dim": time_embed_dim,
              "projection_class_embeddings_input_dim": pooled + TIME_ID_COUNT * time_embed_dim}
    unet = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    for key, value in base.state_dict().items():
        if key.endswith(("attn2.to_k.weight", "attn2.to_v.weight")):
            value = torch.cat([value, value.new_zeros(value.shape[0], second_hidden)], dim=1)
        state[key] = value
    state["add_embedding.linear_2.weight"].zero_()
    state["add_embedding.linear_2.bias"].zero_()
    unet.load_state_dict(state)
    return unet


def encode_xl(encoders: tuple[CLIPTextModel, CLIPTextModelWithProjection],
              ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states, pooled) as diffusers' StableDiffusionXLPipeline.encode_prompt makes them: each encoder's
    penultimate hidden states joined on the feature axis, and the second encoder's projected pooled output."""
    first, second = encoders
    one = first(ids, output_hidden_states=True).hidden_states[-2]
    out = second(ids, output_hidden_states=True)
    return torch.cat([one, out.hidden_states[-2]], dim=-1), out.text_embeds
