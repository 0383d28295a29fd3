"""Speed and memory options (config `performance:`), applied to loaded components; measured in docs/benchmarks.md."""

from __future__ import annotations

import inspect

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from pipeline.models.components import Components
from pipeline.common.errors import UserError
from pipeline.speed.token_merging import MAX_RATIO, apply_token_merging

UNET_DEFAULT_BLOCKS = inspect.signature(UNet2DConditionModel).parameters["down_block_types"].default


def check_performance(perf, device: torch.device) -> None:
    """Refuse option values that cannot work, before any weights load."""
    if not 0 <= perf.guidance_cutoff <= 1:
        raise UserError(f"performance.guidance_cutoff must be a fraction in [0, 1]; got {perf.guidance_cutoff}.")
    for key in ("cpu_offload", "sequential_offload"):
        if perf[key] and device.type != "cuda":
            raise UserError(f"performance.{key} needs model.device cuda; the run's device is {device.type}.")
    if perf.cpu_offload and perf.sequential_offload:
        raise UserError("performance.cpu_offload and performance.sequential_offload are two ways of offloading; "
                        "turn one of them off.")
    if perf.deepcache_interval < 1:
        raise UserError(f"performance.deepcache_interval must be an integer >= 1; got {perf.deepcache_interval}.")
    if perf.deepcache_branch < 0:
        raise UserError(f"performance.deepcache_branch must be an integer >= 0; got {perf.deepcache_branch}.")
    if perf.deepcache_interval > 1 and perf.compile:
        raise UserError("performance.deepcache_interval > 1 cannot be combined with performance.compile "
                        "(its cached steps call the UNet's blocks one by one); turn one of them off.")
    if not 0 <= perf.token_merging <= MAX_RATIO:
        raise UserError(f"performance.token_merging must be a ratio in [0, {MAX_RATIO}]; got {perf.token_merging}.")


UNET_ONLY = ("deepcache_interval", "token_merging", "attention_slicing", "channels_last")  # options that reach into
# a UNet's blocks; a transformer (SD3) takes none of them yet


def check_model_fits(perf, unet_config: dict) -> None:
    """Refuse a DeepCache branch the model's UNet does not have, and the UNet-only options for a transformer, from
    the denoiser's config alone."""
    cls = unet_config.get("_class_name", "UNet2DConditionModel")
    if cls != "UNet2DConditionModel":
        used = [key for key in UNET_ONLY if perf[key] not in (0, 1, False)]
        if used:
            raise UserError(f"performance.{used[0]} works on a UNet's blocks; this model's denoiser is a {cls}, so "
                            "leave it at its default.")
        return
    blocks = len(unet_config.get("down_block_types", UNET_DEFAULT_BLOCKS))
    if perf.deepcache_interval > 1 and perf.deepcache_branch >= blocks:
        raise UserError(f"performance.deepcache_branch must be below {blocks}, the UNet's number of down blocks; "
                        f"got {perf.deepcache_branch}.")


def apply_performance(components: Components, perf) -> None:
    """SDPA attention always; then the opt-in slicing, channels_last, token merging, VAE tiling/slicing, offload
    and compile (DeepCache is applied per batch by generate_images)."""
    if isinstance(components.unet, UNet2DConditionModel):  # a transformer's own processors use SDPA already
        components.unet.set_attn_processor(AttnProcessor2_0())
    components.vae.set_attn_processor(AttnProcessor2_0())
    if perf.attention_slicing:
        components.unet.set_attention_slice("auto")
    if perf.channels_last:
        components.unet.to(memory_format=torch.channels_last)
    if perf.token_merging > 0:
        apply_token_merging(components.unet, perf.token_merging)
    if perf.vae_tiling:
        components.vae.enable_tiling()
    if perf.vae_slicing:
        components.vae.enable_slicing()
    if perf.cpu_offload:
        offload(components)
    if perf.sequential_offload:
        offload_layers(components)
    if perf.compile:
        components.unet = compiled(components.unet, components.device)


def _models(components: Components) -> list[torch.nn.Module]:
    """Every weighted model in the order a run uses them: the text encoders (T5 included: SD3's, FLUX's), the
    denoiser, the VAE."""
    family = components.family
    encoders = [components.parts[p.name] for p in family.weighted if p.name not in (family.denoiser, "vae")
                and p.name in components.parts]
    return encoders + [components.unet, components.vae]


def offload(components: Components) -> None:
    """Keep each model on the CPU until its turn on the GPU (accelerate hooks, as diffusers' model offload)."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for module in _models(components):
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, components.device, prev_module_hook=hook)


def offload_layers(components: Components) -> None:
    """Keep every weight on the CPU and bring each layer to the GPU only for its own call (accelerate's cpu_offload,
    as diffusers' sequential offload): the least GPU memory, at the cost of copying every weight every step."""
    from accelerate import cpu_offload

    for module in _models(components):
        module.to("cpu")
        cpu_offload(module, components.device, offload_buffers=len(module._parameters) > 0)


def compiled(unet, device: torch.device):
    """torch.compile (inductor) of the UNet; on the CPU with freezing, which folds the weights in as constants and
    pre-packs them for oneDNN: measured faster than plain compile on SD 1.5 shapes (docs/benchmarks.md)."""
    return torch.compile(unet, dynamic=False, options={"freezing": True} if device.type == "cpu" else None)
