"""The training recipe's config: dataclass schema <- YAML file <- key=value overrides (struct)."""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import OmegaConf

from pipeline.run import config
from pipeline.common.errors import UserError
from pipeline.models.precision import DTYPES, DtypeChoice, choose_dtype
from pipeline.lab.shapes.model_configs import TextConfig, UnetConfig, VaeConfig
from pipeline.lab.shapes.models import build_unet, scheduler_config
from pipeline.lab.shapes.world import Variation


@dataclass
class LatentConfig:
    """The cached latent dataset the UNet trains on."""

    scenes: int = 30000
    batch_size: int = 250


@dataclass
class WorldConfig:
    """What a scene may vary beyond its caption (pipeline.lab.shapes.world.Variation)."""

    position_jitter: float = 4.0
    radius_jitter: float = 1.5
    shade_jitter: int = 20
    apart: bool = True


@dataclass
class EvalConfig:
    """Sampling settings for the adherence scores."""

    steps: int = 25
    guidance: float = 7.5
    seeds_during: int = 1
    seeds_final: int = 3


@dataclass
class DepthConfig:
    """The depth model: the trained UNet plus a depth input channel, fine-tuned on the world's depth maps."""

    export_dir: str = "models/tiny-shapes-depth"
    batch_size: int = 64
    steps: int = 800
    lr: float = 2e-4
    warmup_steps: int = 50
    checkpoint_every: int = 200


@dataclass
class InpaintConfig(DepthConfig):
    """The inpainting model: the trained UNet plus mask and masked-image channels, fine-tuned on random masks
    (the depth stage's settings, its own defaults, and the share of masks covering the whole image)."""

    export_dir: str = "models/tiny-shapes-inpaint"
    steps: int = 1200
    full_mask_share: float = 0.25
    kept_weight: float = 1.0  # the loss's weight on latent pixels outside the mask (inside: 1)
    edge_weight: float = 1.0  # ... and on those inside it next to a kept one


@dataclass
class ControlNetConfig(DepthConfig):
    """The ControlNet: a copy of the trained UNet's encoder reading the scenes' layout maps (shapes white on black),
    trained with the UNet and text encoder frozen; half the captions empty, as the ControlNet paper trained (Zhang et
    al. 2023, section 3.3: the model must read the map without the prompt)."""

    export_dir: str = "models/tiny-shapes-controlnet"
    steps: int = 1500
    lr: float = 3e-4
    caption_empty: float = 0.5
    conditioning_channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # one halving per step: f=4


@dataclass
class LcmConfig:
    """The LCM-LoRA: latent consistency distillation of the exported base into a LoRA on its UNet (diffusers'
    train_lcm_distill_lora_sd_wds.py's recipe: the guided teacher's DDIM step over 50 grid points, the pseudo-Huber
    loss, the teacher's guidance w drawn per sample; its w range 3..15 suits SD's 7.5, ours the base's 1 + w)."""

    export_path: str = "models/loras/tiny-shapes-lcm.safetensors"
    rank: int = 16
    batch_size: int = 64
    steps: int = 500
    lr: float = 1e-4  # the example's; 3e-4 with weight decay 0.01 drifted (docs/shapes-model.md, "The LCM-LoRA")
    warmup_steps: int = 50
    w_min: float = 2.0  # the teacher's guidance is 1 + w: 3 to 8 here
    w_max: float = 7.0
    checkpoint_every: int = 200


@dataclass
class XlConfig:
    """The SDXL-format sibling: grown from the base (a second text encoder, wider cross-attention, SDXL's text_time
    embedding) and trained jointly on views of the base's scenes with SDXL's micro-conditioning (xl_data.py)."""

    export_dir: str = "models/tiny-shapes-xl"
    second_hidden: int = 32  # the second text encoder's width (the first's is text.hidden_size)
    projection: int = 32  # its pooled projection: SDXL's text_embeds
    time_embed_dim: int = 32  # each of the six time ids' sinusoidal width (SDXL: 256)
    crop_share: float = 0.5  # views drawn larger and cut to 64 at a random offset
    small_share: float = 0.15  # views drawn smaller and scaled up
    largest: int = 96
    crop_smallest: int = 96  # a crop's original side: from this to `largest` (96: every offset 0..32 drawn alike)
    smallest: int = 32
    batch_size: int = 128
    steps: int = 2400
    lr: float = 3e-4  # the parts grown from the base (1e-4 left the crop offsets unlearnt: docs/shapes-model.md)
    new_lr: float = 1e-3  # the new ones: the size/crop embedding, the second encoder
    align_steps: int = 600  # the first encoder fitted to the base's features first (xl_align.py)
    align_lr: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.998
    checkpoint_every: int = 200


@dataclass
class FlowConfig:
    """The flow-matching member (issue 29): an SD3-format transformer trained from scratch by rectified flow on the
    base's latents, read by the base's text encoder (frozen, in both CLIP slots; no T5), exported as a
    StableDiffusion3Pipeline folder (flow_train.py)."""

    export_dir: str = "models/tiny-shapes-flow"
    layers: int = 6
    heads: int = 4
    head_dim: int = 24
    patch_size: int = 2  # latent pixels per token side (SD3's 2; 1 = a token per 4x4 image pixels)
    t5_tokens: int = 1  # the empty T5 slot's zero tokens: configs/flow.yaml's max_sequence_length
    text_tokens: int = 20  # the CLIP window (the exported tokenizer's model_max_length; SD's 77; the captions take 18)
    shift: float = 1.0  # the exported FlowMatchEulerDiscreteScheduler's (SD3's 3.0 is for 1024-pixel images)
    sigma_mean: float = 0.0  # training sigmas are sigmoid(N(sigma_mean, sigma_std)): SD3's logit-normal (0, 1);
    sigma_std: float = 1.0  # a positive mean draws more of them near the noise end, where layouts are decided
    zero_init: bool = True  # DiT's adaLN-Zero: the blocks' modulation and the output layer start at zero (flow6)
    teacher: float = 1.0  # the target's share that is the base UNet's velocity (flow_teacher.py; flow8); 0 = the data's
    teacher_share: float = 1.0  # the noisiest share of each batch the teacher answers (0.25: flowC, relation lost)
    teacher_pool: int = 96000  # taught samples made once, each step drawing its batch from them (flowF); 0 = none
    two_shape_batch: float = 0.0  # the share of each batch drawn from two-shape scenes; 0 = uniform over all scenes
    batch_size: int = 64
    steps: int = 7500  # flowF: pooled steps, 0.39 s each on either CPU kind (docs/shapes-model.md)
    lr: float = 1e-3  # flow1's 3e-4 learnt colours and places but not outlines in 3000 steps
    warmup_steps: int = 200
    ema_decay: float = 0.999
    checkpoint_every: int = 200


@dataclass
class TrainConfig:
    """The whole recipe: VAE -> cached latents -> UNet + text encoder -> diffusers folder."""

    run_dir: str = "runs/tiny-shapes"
    export_dir: str = "models/tiny-shapes"
    seed: int = 0
    threads: int = 2
    precision: str = "auto"  # auto: inference's rule for the recipe's UNet (bfloat16 only if native and >= 20M)
    export_dtype: str = "float32"  # the exported UNets and VAE (float16 halves the family); loading casts them
    two_shape_share: float = 0.25
    beta_end: float = 0.012  # the noise schedule's last beta (scaled_linear from 0.00085, as SD 1.x)
    prediction_type: str = "epsilon"  # or v_prediction (as SD 2.x 768): what the UNet learns to predict
    until: str = "export"
    after: str = ""  # a stage after export: train only the stages after it, from the exported model (export_dir)
    world: WorldConfig = field(default_factory=WorldConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    latents: LatentConfig = field(default_factory=LatentConfig)
    text: TextConfig = field(default_factory=TextConfig)
    unet: UnetConfig = field(default_factory=UnetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    controlnet: ControlNetConfig = field(default_factory=ControlNetConfig)
    lcm: LcmConfig = field(default_factory=LcmConfig)
    xl: XlConfig = field(default_factory=XlConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    @property
    def scheduler(self) -> dict[str, object]:
        """The scheduler config this recipe trains with and exports: SD 1.x's with its beta_end and prediction_type."""
        return scheduler_config(self.beta_end, self.prediction_type)

    @property
    def variation(self) -> Variation:
        """The world's variation this recipe trains on."""
        world = self.world
        return Variation(world.position_jitter, world.radius_jitter, world.shade_jitter, world.apart)

    @cached_property
    def autocast(self) -> DtypeChoice:
        """The stages' precision. 'auto' applies inference's rule (pipeline/models/precision.py) to the recipe's UNet:
        bfloat16 autocast only where the CPU runs it natively (emulated, on an AVX2-only CPU, it is ~100x slower)
        and the UNet is large enough to gain from it; below that float32, measured faster even with native
        bfloat16 (docs/shapes-model.md), and the same numerics on every CPU."""
        if self.precision != "auto":
            return DtypeChoice(DTYPES[self.precision], "set in the recipe", auto=False)
        with torch.device("meta"):
            unet = build_unet(self.unet, self.vae, self.text)
        return choose_dtype("auto", torch.device("cpu"), dict(unet.config))

    @property
    def bf16(self) -> bool:
        """Whether the stages autocast to bfloat16."""
        return self.autocast.dtype == torch.bfloat16


STAGES = ("vae", "latents", "unet", "export", "depth", "inpaint", "controlnet", "lcm", "xl", "flow")
PRECISIONS = ("auto", "float32", "bfloat16")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Schema <- YAML file <- key=value overrides, strict as every config here (pipeline.run.config.load)."""
    merged = config.load(path, overrides or [], schema=TrainConfig)
    recipe: TrainConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    if recipe.precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}; got '{recipe.precision}'.")
    if recipe.export_dtype not in ("float32", "float16"):
        raise UserError(f"export_dtype must be float32 or float16; got '{recipe.export_dtype}'.")
    if recipe.prediction_type not in ("epsilon", "v_prediction"):
        raise UserError(f"prediction_type must be epsilon or v_prediction; got '{recipe.prediction_type}'.")
    if recipe.until not in STAGES:
        raise UserError(f"until must be one of {', '.join(STAGES)}; got '{recipe.until}'.")
    later = STAGES[STAGES.index("export"):STAGES.index(recipe.until)]
    if recipe.after and recipe.after not in later:
        raise UserError(f"after must be empty or one of {', '.join(later)} (a stage from export to before until "
                        f"'{recipe.until}'); got '{recipe.after}'.")
    for key in ("kept_weight", "edge_weight"):
        if getattr(recipe.inpaint, key) <= 0:
            raise UserError(f"inpaint.{key} must be above 0; got {getattr(recipe.inpaint, key)}.")
    for key in ("caption_drop", "caption_empty", "mislabel", "caption_swap"):
        if not 0 <= getattr(recipe.unet, key) <= 1:
            raise UserError(f"unet.{key} must be a chance from 0 to 1; got {getattr(recipe.unet, key)}.")
    if len(recipe.unet.cross_attention_levels) != len(recipe.unet.block_out_channels):
        raise UserError("unet.cross_attention_levels must have one entry per unet.block_out_channels.")
    if len(recipe.controlnet.conditioning_channels) != len(recipe.vae.block_out_channels):
        raise UserError(f"controlnet.conditioning_channels must have one entry per vae.block_out_channels (the map "
                        f"is halved as often as the VAE halves the image); got "
                        f"{len(recipe.controlnet.conditioning_channels)} for {len(recipe.vae.block_out_channels)}.")
    if recipe.xl.crop_share < 0 or recipe.xl.small_share < 0 or recipe.xl.crop_share + recipe.xl.small_share > 1:
        raise UserError(f"xl.crop_share and xl.small_share must be chances adding up to at most 1; got "
                        f"{recipe.xl.crop_share} and {recipe.xl.small_share}.")
    if not recipe.xl.smallest < 64 < recipe.xl.crop_smallest <= recipe.xl.largest:
        raise UserError(f"xl.smallest must be under 64 and xl.crop_smallest over it, at most xl.largest (the views' "
                        f"sides); got {recipe.xl.smallest}, {recipe.xl.crop_smallest} and {recipe.xl.largest}.")
    if not 0 <= recipe.lcm.w_min <= recipe.lcm.w_max:
        raise UserError(f"lcm.w_min and lcm.w_max must satisfy 0 <= w_min <= w_max; got {recipe.lcm.w_min} and "
                        f"{recipe.lcm.w_max}.")
    for key in ("controlnet.caption_empty", "flow.teacher", "flow.teacher_share", "flow.two_shape_batch"):
        stage, name = key.split(".")
        value = getattr(getattr(recipe, stage), name)
        if not 0 <= value <= 1:
            raise UserError(f"{key} must be a share from 0 to 1; got {value}.")
    flow = recipe.flow
    if flow.teacher_pool < 0 or (flow.teacher_pool and not flow.teacher * flow.teacher_share):
        raise UserError(f"flow.teacher_pool must be 0 or a count of taught samples, with flow.teacher and "
                        f"flow.teacher_share above 0; got {flow.teacher_pool}.")
    return recipe
