"""Write a diffusers-format model as one checkpoint file in the original (CompVis / A1111) key layout.

The tests use it to make single-file checkpoints of tiny models (nothing can be downloaded here), and
`scripts/make_single_file.py` to give the shipped model in the form A1111 and ComfyUI load. Written from the
original layout's names: `model.diffusion_model.` (UNet), `first_stage_model.` (VAE), and the text encoder as
`cond_stage_model.transformer.` (CLIP, SD 1.x) or `cond_stage_model.model.` (OpenCLIP, SD 2.x).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPEN_CLIP_LAYER = (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                   ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj"))


def _resnet(rest: str) -> str:
    for new, old in RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key(key: str, layers: int, up_attention: list[bool]) -> str:
    """A diffusers UNet2DConditionModel key under its original name."""
    for new, old in UNET_TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    if match := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        at = block * (layers + 1) + index + 1
        return f"input_blocks.{at}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{at}.1.{rest}"
    if match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(match[1]) + 1) * (layers + 1)}.0.op.{match[2]}"
    if match := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        if match[1] == "attentions":
            return f"middle_block.1.{match[3]}"
        return f"middle_block.{2 * int(match[2])}.{_resnet(match[3])}"
    if match := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        at = block * (layers + 1) + index
        return f"output_blocks.{at}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{at}.1.{rest}"
    if match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        block = int(match[1])
        return f"output_blocks.{block * (layers + 1) + layers}.{2 if up_attention[block] else 1}.conv.{match[2]}"
    raise ValueError(f"no original name for UNet key {key}")


def vae_key(key: str, blocks: int) -> str:
    """A diffusers AutoencoderKL key under its original name."""
    key = key.replace("conv_norm_out", "norm_out")
    if match := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{match[1]}.mid.block_{int(match[2]) + 1}.{match[3].replace('conv_shortcut', 'nin_shortcut')}"
    if match := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        rest = match[2]
        for new, old in VAE_ATTENTION.items():
            if rest.startswith(new + "."):
                rest = old + rest[len(new):]
        return f"{match[1]}.mid.attn_1.{rest}"
    if match := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{match[1]}.block.{match[2]}.{match[3].replace('conv_shortcut', 'nin_shortcut')}"
    if match := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
        return f"encoder.down.{match[1]}.downsample.{match[2]}"
    if match := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        level = blocks - 1 - int(match[1])
        return f"decoder.up.{level}.block.{match[2]}.{match[3].replace('conv_shortcut', 'nin_shortcut')}"
    if match := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        return f"decoder.up.{blocks - 1 - int(match[1])}.upsample.{match[2]}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def open_clip_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIPTextModel's tensors as OpenCLIP names them (q, k, v joined into in_proj), under cond_stage_model.model."""
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {"token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           "positional_embedding": state.pop("embeddings.position_embedding.weight")}
    width = out["token_embedding.weight"].shape[1]
    out["text_projection"] = torch.eye(width)  # OpenCLIP's projection; SD 2.x does not use it
    for key in [k for k in state if ".self_attn.q_proj." in k]:
        layer, kind = re.match(r"encoder\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", key).groups()
        parts = [state.pop(f"encoder.layers.{layer}.self_attn.{p}_proj.{kind}") for p in "qkv"]
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(parts)
    for key, value in state.items():
        if key.startswith("final_layer_norm."):
            out["ln_final." + key.split(".", 1)[1]] = value
            continue
        layer, rest = re.match(r"encoder\.layers\.(\d+)\.(.*)", key).groups()
        for new, old in OPEN_CLIP_LAYER:
            rest = rest.replace(new, old)
        out[f"transformer.resblocks.{layer}.{rest}"] = value
    return {"cond_stage_model.model." + k: v for k, v in out.items()}


def original_layout(unet, vae, text_encoder, open_clip: bool) -> dict[str, torch.Tensor]:
    """One state dict of the three parts in the original layout."""
    layers = unet.config.layers_per_block
    up_attention = ["CrossAttn" in kind for kind in unet.config.up_block_types]
    tensors = {"model.diffusion_model." + unet_key(k, layers, up_attention): v for k, v in unet.state_dict().items()}
    blocks = len(vae.config.block_out_channels)
    for key, value in vae.state_dict().items():
        name = vae_key(key, blocks)
        if ".mid.attn_1." in name and value.ndim == 2:
            value = value[:, :, None, None]  # the original attention uses 1x1 convolutions
        tensors["first_stage_model." + name] = value
    text = text_encoder.state_dict()
    if open_clip:
        tensors.update(open_clip_tensors(text))
    else:
        tensors.update({"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
                        for k, v in text.items()})
    return {k: v.detach().contiguous() for k, v in tensors.items()}


def write_checkpoint(folder: Path, file: Path, open_clip: bool = False) -> Path:
    """Save the diffusers-format model in `folder` as one .safetensors file in the original layout."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    from transformers.utils import logging as transformers_logging

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # a helper's load: no "Loading weights" bar on stderr
    try:
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    finally:
        if shown:
            transformers_logging.enable_progress_bar()
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(original_layout(unet, vae, text_encoder, open_clip), str(file))
    return file
