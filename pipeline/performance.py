"""Speed and memory options (config `performance:`), applied to loaded components; measured in docs/benchmarks.md."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from .components import Components
from .errors import UserError

def check_performance(perf, device: torch.device) -> None:
    """Refuse option values that cannot work, before any weights load."""
    if not 0 <= perf.guidance_cutoff <= 1:
        raise UserError(f"performance.guidance_cutoff must be a fraction in [0, 1]; got {perf.guidance_cutoff}.")
    if perf.cpu_offload and device.type != "cuda":
        raise UserError(f"performance.cpu_offload needs model.device cuda; the run's device is {device.type}.")


def apply_performance(components: Components, perf) -> None:
    """SDPA attention always; then the opt-in slicing, channels_last, VAE tiling/slicing, offload and compile."""
    components.unet.set_attn_processor(AttnProcessor2_0())
    components.vae.set_attn_processor(AttnProcessor2_0())
    if perf.attention_slicing:
        components.unet.set_attention_slice("auto")
    if perf.channels_last:
        components.unet.to(memory_format=torch.channels_last)
    if perf.vae_tiling:
        components.vae.enable_tiling()
    if perf.vae_slicing:
        components.vae.enable_slicing()
    if perf.cpu_offload:
        offload(components)
    if perf.compile:
        components.unet = torch.compile(components.unet, dynamic=False)


def offload(components: Components) -> None:
    """Keep each model on the CPU until its turn on the GPU (accelerate hooks, as diffusers' model offload)."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for module in (components.text_encoder, components.unet, components.vae):
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, components.device, prev_module_hook=hook)
