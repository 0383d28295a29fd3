"""Add-on files made from a model folder, for the README's examples and the tests: a random LoRA (diffusers or
kohya layout) and a textual-inversion embedding built from words the model already knows."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin as LoraLoader
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTokenizer

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _adapter_weights(model, targets: list[str], rank: int, seed: int, scale: float) -> dict:
    """A random LoRA on the model's target layers (peft), its B scaled so the change is visible but not wild."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False)
    state = get_peft_model_state_dict(inject_adapter_in_model(config, model))
    return {k: v * scale if "lora_B" in k else v for k, v in state.items()}


def make_lora(model: Path, out: Path, seed: int = 0, kind: str = "diffusers", text: bool = True, scale: float = 1.0,
              rank: int = 4) -> Path:
    """Write a random LoRA for the model's UNet (and text encoder) as a diffusers or kohya .safetensors file."""
    unet = _adapter_weights(UNet2DConditionModel.from_pretrained(model, subfolder="unet"), UNET_TARGETS, rank, seed,
                            scale)
    te = None
    if text:
        encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
        te = _adapter_weights(encoder, TEXT_TARGETS, rank, seed + 1, scale)
    folder = out.parent / f".{out.stem}-diffusers"
    LoraLoader.save_lora_weights(folder, unet_lora_layers=unet, text_encoder_lora_layers=te)
    state = load_file(folder / "pytorch_lora_weights.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state if kind == "diffusers" else to_kohya(state, rank), out)
    return out


def to_kohya(state: dict, rank: int) -> dict:
    """diffusers LoRA keys -> kohya's: lora_unet_<path>/lora_te_text_model_<path> with lora_down/lora_up/alpha."""
    out = {}
    for key, tensor in state.items():
        part, rest = key.split(".", 1)
        module, which = rest.rsplit(".lora_", 1)
        prefix = "lora_te_text_model_" if part == "text_encoder" else "lora_unet_"
        name = prefix + module.replace(".", "_")
        out[f"{name}.{'lora_down' if which.startswith('A') else 'lora_up'}.weight"] = tensor
        out[f"{name}.alpha"] = torch.tensor(float(rank))
    return out


def make_word_embedding(model: Path, words: str, out: Path) -> Path:
    """An A1111-format embedding (emb_params) whose vectors are the text encoder's token embeddings of the words:
    a token that means what the words mean, one vector per token."""
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
    ids = tokenizer(words, add_special_tokens=False).input_ids
    vectors = encoder.get_input_embeddings().weight[ids].detach().clone()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": vectors}, out)
    return out
