"""`model.dtype: auto`: the fastest precision that keeps the image on this machine, by what the hardware reports.

CPU: bfloat16 only where torch reports native support (AVX512-BF16 or AMX) *and* dispatches AVX-512 kernels,
and only for a UNet large enough to gain; float32 otherwise (emulated bfloat16 matmuls are ~100x slower).
CUDA: float16, or bfloat16 where the GPU has it natively and the VAE declares it overflows in float16
(`force_upcast`, as SDXL's does). MPS: float16. The measurements behind the thresholds are in
docs/benchmarks.md ("Choosing the dtype").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.common.errors import UserError
from pipeline.common.memo import remembered

log = logging.getLogger("pipeline")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Below this many UNet parameters bfloat16 does not pay on the CPU even where native (scripts/bench_unet.py, SD-shaped
# UNets at 64x64, batch 2, on a Zen 5: bfloat16 / float32 time per call 1.12 at 1.0M and 3.1M, 1.01 at 10.4M,
# 0.78 at 37.5M, 0.59 at 142M, 0.22 at 860M; docs/benchmarks.md): past break-even, with a margin.
CPU_BFLOAT16_MIN_PARAMS = 20_000_000
AVX512_LEVELS = ("AVX512", "AVX512_BF16", "AMX")
_COUNTED: dict[str, int] = {}  # unet_parameters' counts, keyed by the whole config (its repr)


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a run uses and, for `auto`, the reason in one clause."""

    dtype: torch.dtype
    reason: str
    auto: bool = True

    @property
    def name(self) -> str:
        """The config spelling: float32, float16 or bfloat16."""
        return str(self.dtype).removeprefix("torch.")


def cpu_bfloat16_support() -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 matmuls natively, and what it reports, as (native, description)."""
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        avx512_bf16 = torch.cpu._is_avx512_bf16_supported()
        amx = torch.cpu._is_amx_tile_supported()
    except AttributeError:  # a torch without the private checks: oneDNN's own answer
        avx512_bf16, amx = torch.ops.mkldnn._is_mkldnn_bf16_supported(), False
    features = [name for name, has in (("AVX512-BF16", avx512_bf16), ("AMX", amx)) if has]
    if not features:
        described = f"capability {capability}, no AVX512-BF16 or AMX"
    elif capability not in AVX512_LEVELS:
        described = f"capability {capability}: torch dispatches no AVX-512 kernels, though the CPU reports {' and '.join(features)}"
    else:
        described = f"capability {capability}, {' and '.join(features)}"
    return bool(features) and capability in AVX512_LEVELS, described


def unet_parameters(unet_config: dict[str, Any]) -> int:
    """The UNet's parameter count, from its config alone (built on the meta device: no memory, no weights), counted
    once per config (a job's lines that name the same model share the count)."""
    config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    cls = unet_config.get("_class_name", "UNet2DConditionModel")
    key = cls + repr(sorted(config.items()))
    return remembered(_COUNTED, key, lambda: count_parameters(config, cls))


def count_parameters(config: dict[str, Any], cls: str = "UNet2DConditionModel") -> int:
    """Build the denoiser (a UNet, or the diffusers class its config names: SD3's transformer) from its config on
    the meta device and count its parameters."""
    import diffusers

    with torch.device("meta"):
        model = getattr(diffusers, cls).from_config(config)
    return sum(p.numel() for p in model.parameters())


def _auto_cpu(unet_config: dict[str, Any] | None) -> DtypeChoice:
    """bfloat16 where native and the UNet is large enough to gain; else float32."""
    native, described = cpu_bfloat16_support()
    if not native:
        return DtypeChoice(torch.float32, f"this CPU has no native bfloat16 ({described})")
    if unet_config is not None:
        params = unet_parameters(unet_config)
        if params < CPU_BFLOAT16_MIN_PARAMS:
            return DtypeChoice(torch.float32, f"native bfloat16 ({described}), but the UNet's {params / 1e6:.1f}M "
                               f"parameters are too few to gain from it (bfloat16 pays from {CPU_BFLOAT16_MIN_PARAMS // 10**6}M)")
    return DtypeChoice(torch.bfloat16, f"native bfloat16 on this CPU ({described})")


def _auto_cuda(vae_config: dict[str, Any] | None, device: torch.device) -> DtypeChoice:
    """float16, or bfloat16 where native and the VAE would overflow in float16."""
    overflows = bool((vae_config or {}).get("force_upcast", False))
    if overflows and torch.cuda.is_bf16_supported():
        return DtypeChoice(torch.bfloat16, "native bfloat16 on this GPU, and the VAE overflows in float16 (force_upcast)")
    return DtypeChoice(torch.float16, f"float16 on {torch.cuda.get_device_name(device)}")


def check_dtype_name(name: str) -> None:
    """Refuse a model.dtype that is neither auto nor a known dtype, before anything is read."""
    if name != "auto" and name not in DTYPES:
        raise UserError(f"model.dtype must be one of auto, {', '.join(DTYPES)}; got '{name}'.")


def choose_dtype(
    name: str, device: torch.device, unet_config: dict[str, Any] | None = None, vae_config: dict[str, Any] | None = None
) -> DtypeChoice:
    """The dtype for a config name; `auto` decides by the device's reported capability and the model's size."""
    check_dtype_name(name)
    if name != "auto":
        return DtypeChoice(DTYPES[name], "set in the config", auto=False)
    if device.type == "cpu":
        return _auto_cpu(unet_config)
    if device.type == "cuda":
        return _auto_cuda(vae_config, device)
    return DtypeChoice(torch.float16, f"float16 on {device.type}")


def announce(choice: DtypeChoice) -> None:
    """Say once, in the log, what `auto` chose and why."""
    if choice.auto:
        log.info("model.dtype auto -> %s: %s.", choice.name, choice.reason)
