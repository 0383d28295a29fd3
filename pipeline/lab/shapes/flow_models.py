"""The flow-matching member's parts: an SD3Transformer2DModel sized for the shapes world, and the base's text encoder
in the form SD3's two CLIP slots take (a CLIPTextModelWithProjection whose projection is the identity, so its
pooled projection is the base's pooled output)."""

from __future__ import annotations

import torch
from diffusers import SD3Transformer2DModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

SLOTS = 2  # SD3's CLIP slots: the same frozen encoder fills both (joined states, joined pooled outputs)


def projected_encoder(plain: CLIPTextModel) -> CLIPTextModelWithProjection:
    """The base encoder with an identity text projection, frozen."""
    config = plain.config.to_dict()
    config["projection_dim"] = plain.config.hidden_size
    encoder = CLIPTextModelWithProjection(type(plain.config).from_dict(config))
    weights = {name if name.startswith("text_model.") else f"text_model.{name}": tensor
               for name, tensor in plain.state_dict().items()}  # CLIPTextModel's own keys drop the prefix
    missing, _ = encoder.load_state_dict(weights, strict=False)
    if set(missing) != {"text_projection.weight"}:
        raise ValueError(f"the base's text encoder does not fill a projected one: {missing}")
    with torch.no_grad():
        encoder.text_projection.weight.copy_(torch.eye(plain.config.hidden_size))
    return encoder.eval().requires_grad_(False)


def flow_transformer(spec, text_width: int, latent_channels: int, latent_side: int) -> SD3Transformer2DModel:
    """A transformer over `spec.patch_size` patches of the base's latents, reading SLOTS x the text width (the joined
    CLIP states and pooled outputs, as SD3's pipeline joins them)."""
    transformer = SD3Transformer2DModel(
        sample_size=latent_side, patch_size=spec.patch_size, in_channels=latent_channels,
        out_channels=latent_channels, num_layers=spec.layers, attention_head_dim=spec.head_dim,
        num_attention_heads=spec.heads,
        joint_attention_dim=SLOTS * text_width, caption_projection_dim=spec.heads * spec.head_dim,
        pooled_projection_dim=SLOTS * text_width, pos_embed_max_size=latent_side)
    return zero_modulation(transformer) if spec.zero_init else transformer


def zero_modulation(transformer: SD3Transformer2DModel) -> SD3Transformer2DModel:
    """DiT's adaLN-Zero start (Peebles & Xie 2023, section 3.2): every block's modulation (shift, scale, gate) and
    the output layer's are zero, so each block starts as the identity and the first prediction is zero."""
    with torch.no_grad():
        for name, module in transformer.named_modules():
            if name == "proj_out" or name.endswith(("norm1", "norm1_context", "norm_out")):
                layer = module if name == "proj_out" else module.linear
                layer.weight.zero_()
                layer.bias.zero_()
    return transformer


@torch.no_grad()
def encode_flow(encoder: CLIPTextModelWithProjection, ids: torch.Tensor, t5_tokens: int) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
    """(hidden states, pooled projections) as StableDiffusion3Pipeline builds them from this encoder in both slots
    and no T5: the penultimate states joined with themselves, then `t5_tokens` zero tokens; the pooled outputs
    joined."""
    output = encoder(ids, output_hidden_states=True)
    states = torch.cat([output.hidden_states[-2]] * SLOTS, dim=-1)
    empty = torch.zeros(len(ids), t5_tokens, states.shape[-1])
    return torch.cat([states, empty], dim=1), torch.cat([output.text_embeds] * SLOTS, dim=-1)
