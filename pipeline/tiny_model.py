"""A tiny random Stable Diffusion folder in diffusers format, for tests and for a first run without weights."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, DPTConfig, DPTForDepthEstimation, DPTImageProcessor

MAX_TOKENS = 77


def byte_vocabulary() -> list[str]:
    """GPT-2/CLIP's byte -> printable character table: one character per byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tokenizer(folder: Path, pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A CLIPTokenizer with one token per byte character and its '</w>' form, and no merges; SD 2.x's tokenizer
    pads with '!' instead of the end token."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = byte_vocabulary()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS,
                              pad_token=pad_token)
    tokenizer.save_pretrained(folder)
    return tokenizer


PIPELINE_CLASSES = {4: "StableDiffusionPipeline", 9: "StableDiffusionInpaintPipeline", 5: "StableDiffusionDepth2ImgPipeline"}


def write_model_index(folder: Path, scheduler_class: str, unet_in_channels: int = 4) -> None:
    """model_index.json in diffusers' layout for the UNet's kind, so diffusers can load the folder as a reference."""
    index = {
        "_class_name": PIPELINE_CLASSES[unet_in_channels],
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", scheduler_class],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if unet_in_channels == 5:
        estimator = (folder / "depth_estimator").is_dir()
        index["depth_estimator"] = ["transformers", "DPTForDepthEstimation"] if estimator else [None, None]
        index["feature_extractor"] = ["transformers", "DPTImageProcessor"] if estimator else [None, None]
    else:
        index.update(feature_extractor=[None, None], safety_checker=[None, None], requires_safety_checker=False)
        if unet_in_channels == 4:
            index["image_encoder"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))


def sd_scheduler(prediction_type: str = "epsilon") -> PNDMScheduler:
    """The scheduler config Stable Diffusion 1.x ships: scaled-linear betas 0.00085..0.012 over 1000 steps (SD 2.x's
    768 models: the same with v-prediction)."""
    return PNDMScheduler(
        prediction_type=prediction_type,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def write_depth_estimator(folder: Path, seed: int) -> None:
    """A tiny random DPT depth estimator (32x32 input) and its image processor, as depth2img folders carry."""
    config = DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 16, 32, 32],
        fusion_hidden_size=16,
        is_hybrid=False,
    )
    torch.manual_seed(seed)
    estimator = DPTForDepthEstimation(config)
    with torch.no_grad():  # the default init gives a constant depth; widen neck and head so depth varies
        for name, param in estimator.named_parameters():
            if name.startswith(("neck", "head")):
                param.normal_(0, 0.3)
    estimator.save_pretrained(folder / "depth_estimator")
    processor = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    processor.save_pretrained(folder / "feature_extractor")


def build_tiny_model(
    folder: str | Path, seed: int = 0, unet_in_channels: int = 4, time_cond_proj_dim=None, depth_estimator=False,
    sd2: bool = False,
) -> Path:
    """Save tokenizer, CLIP text encoder (hidden 32), UNet (32, 64) and a 2-block VAE with random weights. With sd2,
    what SD 2.x (768, v) changes: v-prediction, '!' padding, GELU in the text encoder, linear attention projections
    and head counts per block."""
    folder = Path(folder)
    tokenizer = write_tokenizer(folder / "tokenizer", "!" if sd2 else "<|endoftext|>")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=5,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_act="gelu" if sd2 else "quick_gelu",
        )
    )
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=unet_in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        time_cond_proj_dim=time_cond_proj_dim,
        **({"use_linear_projection": True, "attention_head_dim": (2, 4)} if sd2 else {}),
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=16,
    )
    text_encoder.save_pretrained(folder / "text_encoder")
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    scheduler = sd_scheduler("v_prediction" if sd2 else "epsilon")
    scheduler.save_pretrained(folder / "scheduler")
    if depth_estimator:
        write_depth_estimator(folder, seed)
    write_model_index(folder, type(scheduler).__name__, unet_in_channels)
    return folder
