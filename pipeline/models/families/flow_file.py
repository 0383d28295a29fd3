"""How SD3 / SD3.5 and FLUX.1 checkpoints in their released one-file layouts are recognised and converted.

SD3's files as Stability releases them (`sd3_medium.safetensors`, its `_incl_clips` and `_incl_clips_t5xxlfp8`
forms, `sd3.5_medium.safetensors`, `sd3.5_large.safetensors`): the MMDiT under `model.diffusion_model.`
(`joint_blocks.*`), the VAE under `first_stage_model.`, and where included CLIP ViT-L, OpenCLIP bigG (both in
transformers' names) and T5-XXL under `text_encoders.clip_l.transformer.`, `text_encoders.clip_g.transformer.` and
`text_encoders.t5xxl.transformer.`. FLUX.1's as Black Forest Labs releases them (`flux1-dev.safetensors`,
`flux1-schnell.safetensors`): the transformer alone (`double_blocks.*`, `single_blocks.*`, `img_in.*`), bare or under
`model.diffusion_model.`; ComfyUI's all-in-one files add the VAE under `vae.` and the text encoders as SD3's.
Every part is converted by diffusers' own single-file conversions (diffusers.loaders.single_file_utils).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from diffusers.loaders.single_file_utils import (
    convert_flux_transformer_checkpoint_to_diffusers,
    convert_ldm_clip_checkpoint,
    convert_sd3_t5_checkpoint_to_diffusers,
    convert_sd3_transformer_checkpoint_to_diffusers,
)

from pipeline.models.families.family import FlowFile

TRANSFORMER = "model.diffusion_model."
VAES = ("first_stage_model.", "vae.")  # the VAE's prefixes diffusers' convert_ldm_vae_checkpoint reads
CLIP_L, CLIP_G, T5XXL = ("text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.",
                         "text_encoders.t5xxl.transformer.")
OTHERS = (*VAES, "text_encoders.")
FLUX_WIDTH, FLUX_MLP = 3072, 4 * 3072  # the widths diffusers' FLUX conversion splits single blocks' linear1 at
FUSED = re.compile(r"single_blocks\.(\d+)\.linear1\.(weight|bias)")


def transformer_tensors(tensors: dict) -> dict:
    """The transformer's tensors of a checkpoint, without the model.diffusion_model. prefix: those under it, or in a
    bare transformer file every tensor outside the VAE's and text encoders' prefixes."""
    if any(name.startswith(TRANSFORMER) for name in tensors):
        return {name.removeprefix(TRANSFORMER): t for name, t in tensors.items() if name.startswith(TRANSFORMER)}
    return {name: t for name, t in tensors.items() if not name.startswith(OTHERS)}


def blocks(names, kind: str) -> int:
    """How many `kind` blocks (joint_blocks, double_blocks, ...) the transformer's tensor names number."""
    found = {int(match[1]) for name in names if (match := re.match(rf"{kind}\.(\d+)\.", name))}
    return max(found) + 1 if found else 0


def sd3_config(header: Any) -> str:
    """The shipped SD3 configs a header's MMDiT fits: SD3.5 large's 38 blocks, SD3.5 medium's dual attention
    (`x_block.attn2`) in its first blocks, else SD3 medium."""
    names = transformer_tensors(header.tensors)
    if blocks(names, "joint_blocks") >= 38:
        return "sd3.5-large"
    return "sd3.5-medium" if any(".x_block.attn2." in name for name in names) else "sd3-medium"


def flux_config(header: Any) -> str:
    """FLUX.1-dev's configs where the transformer has the distilled guidance's embedder (`guidance_in`), else
    schnell's."""
    return "flux-dev" if any(n.startswith("guidance_in.") for n in transformer_tensors(header.tensors)) \
        else "flux-schnell"


def convert_sd3(tensors: dict, config: dict) -> dict:
    """SD3's MMDiT under diffusers' names (diffusers' convert_sd3_transformer_checkpoint_to_diffusers)."""
    return convert_sd3_transformer_checkpoint_to_diffusers(transformer_tensors(tensors))


def convert_flux(tensors: dict, config: dict) -> dict:
    """FLUX's transformer under diffusers' names (diffusers' convert_flux_transformer_checkpoint_to_diffusers). That
    conversion splits each single block's fused linear1 (q, k, v and the MLP's input) at FLUX.1's width, 3072; a
    transformer of another width (the tiny test models) is converted with stand-ins of FLUX.1's shape (on the meta
    device) in their place, and its own linear1 split here at its width, into the same four names."""
    tensors = transformer_tensors(tensors)
    fused = {name: t for name, t in tensors.items() if FUSED.fullmatch(name)}
    if all(t.shape[0] == 3 * FLUX_WIDTH + FLUX_MLP for t in fused.values()):
        return convert_flux_transformer_checkpoint_to_diffusers(tensors)
    stand_ins = {name: torch.empty((3 * FLUX_WIDTH + FLUX_MLP, *t.shape[1:2]), device="meta")
                 for name, t in fused.items()}
    converted = convert_flux_transformer_checkpoint_to_diffusers({**tensors, **stand_ins})
    for name, tensor in fused.items():
        block, kind = FUSED.fullmatch(name).groups()
        width = tensors[f"single_blocks.{block}.linear1.weight"].shape[1]
        pieces = torch.split(tensor, [width, width, width, tensor.shape[0] - 3 * width])
        prefix = f"single_transformer_blocks.{block}."
        for target, piece in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), pieces):
            converted[f"{prefix}{target}.{kind}"] = piece
    return converted


def convert_flow_text(tensors: dict, prefix: str, text_config: Any) -> dict:
    """One text encoder of a flow file under diffusers' names, as diffusers' create_diffusers_clip_model_from_ldm and
    create_diffusers_t5_model_from_checkpoint convert them: T5 by convert_sd3_t5_checkpoint_to_diffusers, a CLIP by
    convert_ldm_clip_checkpoint at its prefix; CLIP ViT-L's projection is the identity where the model has one
    (SD3's), none otherwise (FLUX reads CLIP's pooler output)."""
    if prefix == T5XXL:
        return convert_sd3_t5_checkpoint_to_diffusers(tensors)
    converted = convert_ldm_clip_checkpoint(tensors, prefix)
    if prefix == CLIP_L:
        converted.pop("text_projection.weight", None)
        if "CLIPTextModelWithProjection" in (text_config.architectures or ()):
            converted["text_projection.weight"] = torch.eye(text_config.hidden_size)
    return converted


SD3_FILE = FlowFile("joint_blocks.0.context_block.adaLN_modulation.1.bias", sd3_config, convert_sd3,
                    (("text_encoder", CLIP_L), ("text_encoder_2", CLIP_G), ("text_encoder_3", T5XXL)))
FLUX_FILE = FlowFile("double_blocks.0.img_attn.norm.key_norm.scale", flux_config, convert_flux,
                     (("text_encoder", CLIP_L), ("text_encoder_2", T5XXL)))
