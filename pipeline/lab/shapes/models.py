"""Builders for the tiny model family: VAE, UNet, text encoder and the SD 1.x scheduler config."""

from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from pipeline.lab.shapes.model_configs import TextConfig, UnetConfig, VaeConfig
from pipeline.lab.shapes.world import IMAGE_SIZE

SCHEDULER_CONFIG: dict[str, object] = {
    "_class_name": "DDIMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}


def scheduler_config(beta_end: float, prediction_type: str = "epsilon") -> dict[str, object]:
    """SD 1.x's scheduler config with the recipe's last beta (a larger one leaves less of the image in the
    starting noise, which a finer latent grid needs: docs/shapes-model.md, version 2) and what the UNet predicts."""
    return {**SCHEDULER_CONFIG, "beta_end": beta_end, "prediction_type": prediction_type}


def build_vae(config: VaeConfig) -> AutoencoderKL:
    """An AutoencoderKL that downsamples 64x64 RGB by 2**(blocks-1)."""
    blocks = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        sample_size=IMAGE_SIZE,
    )


def latent_size(config: VaeConfig) -> int:
    """Side of the latent grid for the world's images."""
    return IMAGE_SIZE // 2 ** (len(config.block_out_channels) - 1)


def build_unet(config: UnetConfig, vae: VaeConfig, text: TextConfig) -> UNet2DConditionModel:
    """A UNet2DConditionModel with cross-attention only at the levels the config names."""
    levels = config.cross_attention_levels
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    return UNet2DConditionModel(
        sample_size=latent_size(vae),
        in_channels=vae.latent_channels,
        out_channels=vae.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        cross_attention_dim=text.hidden_size,
        attention_head_dim=config.attention_heads,
        norm_num_groups=config.norm_num_groups,
    )


def build_text_encoder(config: TextConfig, vocab_size: int) -> CLIPTextModel:
    """A small CLIPTextModel over the world's word-level vocabulary (ids 0/1 = start/end)."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
