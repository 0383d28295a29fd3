"""The shapes of the model the recipe trains: VAE, text encoder and UNet (models.py builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VaeConfig:
    """AutoencoderKL shape and its training (scenes rendered fresh every step)."""

    block_out_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    layers_per_block: int = 1
    norm_num_groups: int = 8
    latent_channels: int = 4
    batch_size: int = 32
    steps: int = 2000
    lr: float = 1e-3
    kl_weight: float = 1e-6
    edge_weight: float = 1.0
    checkpoint_every: int = 200


@dataclass
class TextConfig:
    """CLIPTextModel shape (trained jointly with the UNet)."""

    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 256


@dataclass
class UnetConfig:
    """UNet2DConditionModel shape and the joint UNet + text encoder training."""

    block_out_channels: list[int] = field(default_factory=lambda: [64, 128])
    cross_attention_levels: list[bool] = field(default_factory=lambda: [False, True])
    layers_per_block: int = 2
    attention_heads: int = 8
    norm_num_groups: int = 32
    batch_size: int = 128
    steps: int = 5000
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    snr_floor: float = 0.0  # added to min(SNR, gamma), the clean-image error's weight (0: Hang et al.'s min-SNR)
    min_snr_until: int = 0  # from this UNet step on (and in the siblings) the plain loss; 0: min-SNR throughout
    caption_drop: float = 0.3
    caption_empty: float = 0.1
    mislabel: float = 0.0
    caption_swap: float = 0.0  # chance that a caption describes another scene than its image's
    checkpoint_every: int = 250
    eval_every: int = 1000
