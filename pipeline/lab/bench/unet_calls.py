"""One UNet call, timed per way of running it, against this machine's GEMM rate; and where bfloat16 starts to pay.

`modes`: eager (the default path: SDPA), channels_last, sdpa_math (SDPA's math back-end instead of the fused one),
compile (torch.compile, inductor), compile_freezing (inductor with freezing: weights folded and pre-packed for oneDNN;
what `performance.compile` does on the CPU). `widths`: SD-shaped UNets of block widths (w, 2w, 4w, 4w), each timed in float32 and
bfloat16, for the dtype rule's size threshold (pipeline/models/precision.py).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from pipeline.run import config
from pipeline.models.components import resolve_device
from pipeline.models.inspect import inspect_model
from pipeline.common.errors import UserError
from pipeline.models.precision import DTYPES
from pipeline.lab.bench.main import native_dtypes
from pipeline.lab.bench.measure import cpu_description, describe_cpu, gemm_rate, sync, unet_flops
from pipeline.lab.bench.sd15 import UNET as SD15_UNET

MODES = ("eager", "channels_last", "sdpa_math", "compile", "compile_freezing")


@dataclass
class UnetCallsConfig:
    """What to time: the UNet, the latent size and batch, the dtypes and modes; the widths of the size sweep."""

    model: str = "sd15-random"
    device: str = "auto"
    height: int = 512
    width: int = 512
    batch: int = 2
    dtypes: list[str] = field(default_factory=lambda: ["float32", "bfloat16"])
    modes: list[str] = field(default_factory=lambda: ["eager", "channels_last"])
    repeats: int = 2
    widths: list[int] = field(default_factory=list)
    widths_size: int = 64
    gemm_budget_s: float = 3.0


def sd_shaped(width: int) -> dict:
    """An SD 1.5-shaped UNet config with block widths (w, 2w, 4w, 4w)."""
    return SD15_UNET | {"block_out_channels": (width, 2 * width, 4 * width, 4 * width),
                        "norm_num_groups": min(32, width)}


def build_unet(unet_config: dict, dtype: torch.dtype, device: torch.device, path: str | None = None):
    """A random-weight UNet of the config, or the model folder's own weights; SDPA attention, eval mode."""
    torch.manual_seed(0)
    if path is None:
        unet = UNet2DConditionModel(**unet_config)
    else:
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
    unet = unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    unet.set_attn_processor(AttnProcessor2_0())
    return unet


def _call(unet, mode: str, sample: torch.Tensor, context: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The UNet call for one mode, ready to time."""
    t = torch.tensor(500, device=sample.device)
    if mode == "channels_last":
        unet = unet.to(memory_format=torch.channels_last)
        sample = sample.to(memory_format=torch.channels_last)
    if mode.startswith("compile"):
        torch._dynamo.reset()
        unet = torch.compile(unet, dynamic=False, options={"freezing": mode == "compile_freezing"})
    backend = nullcontext
    if mode == "sdpa_math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = lambda: sdpa_kernel(SDPBackend.MATH)  # noqa: E731

    def call() -> torch.Tensor:
        with torch.no_grad(), backend():
            return unet(sample, t, encoder_hidden_states=context, return_dict=False)[0]

    return call


def time_call(call: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, which pays compilation; the best of `repeats` calls after it)."""
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    first, best = time.perf_counter() - start, float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return first, best


def _inputs(unet, batch: int, latent: int, dtype: torch.dtype, device: torch.device):
    sample = torch.randn(batch, unet.config.in_channels, latent, latent, device=device, dtype=dtype)
    context = torch.randn(batch, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    return sample, context


def modes_table(cfg, device: torch.device, dtypes: list[str]) -> list[dict]:
    """Every (dtype, mode): first-call and steady seconds, UNet GFLOP/s and its fraction of the GEMM rate."""
    path = None if cfg.model == "sd15-random" else cfg.model
    unet_config = SD15_UNET if path is None else inspect_model(path).unet
    rows = []
    for name in dtypes:
        dtype = DTYPES[name]
        unet = build_unet(unet_config, dtype, device, path)
        sample, context = _inputs(unet, cfg.batch, cfg.height // 8, dtype, device)
        flops = unet_flops(unet, cfg.batch, (cfg.height // 8, cfg.width // 8), context[:1])
        for mode in cfg.modes:
            first, best = time_call(_call(unet, mode, sample, context), device, cfg.repeats)
            unet.to(memory_format=torch.contiguous_format)
            gemm, n = gemm_rate(device, dtype, cfg.gemm_budget_s)
            rows.append({"dtype": name, "mode": mode, "first_s": first, "seconds": best, "gflop": flops / 1e9,
                         "gflops": flops / best / 1e9, "gemm_gflops": gemm / 1e9, "gemm_n": n,
                         "fraction_of_gemm": flops / best / gemm})
        del unet
    return rows


def widths_table(cfg, device: torch.device, dtypes: list[str]) -> list[dict]:
    """Per SD-shaped width: parameters and seconds per call in each dtype (the bfloat16 / float32 ratio)."""
    rows = []
    latent = cfg.widths_size // 8
    for width in cfg.widths:
        row = {"width": width, "size": cfg.widths_size}
        for name in dtypes:
            unet = build_unet(sd_shaped(width), DTYPES[name], device)
            row["params"] = sum(p.numel() for p in unet.parameters())
            sample, context = _inputs(unet, cfg.batch, latent, DTYPES[name], device)
            row[name] = time_call(_call(unet, "eager", sample, context), device, max(cfg.repeats, 3))[1]
        rows.append(row)
    return rows


def run_unet_calls(cfg) -> dict:
    """Check the config, then measure the modes table and the widths sweep in one process."""
    unknown = [m for m in cfg.modes if m not in MODES]
    if unknown:
        raise UserError(f"modes must be among {', '.join(MODES)}; got {', '.join(unknown)}.")
    if cfg.height % 8 or cfg.width % 8 or cfg.batch < 1 or cfg.repeats < 1:
        raise UserError("height and width must be multiples of 8, batch and repeats >= 1.")
    device = resolve_device(cfg.device)
    dtypes, skipped = native_dtypes(list(cfg.dtypes), device)
    return {"cpu": cpu_description(), "torch": torch.__version__, "device": device.type, "skipped_dtypes": skipped,
            "modes": modes_table(cfg, device, dtypes), "widths": widths_table(cfg, device, dtypes)}


def markdown(result: dict, cfg) -> str:
    """A dated section for docs/benchmarks.md."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"## {stamp}: one UNet call, {cfg.model}, {result['device']}, torch {result['torch']}", "",
             describe_cpu(result["cpu"]), ""]
    lines += [f"{name} not measured: {why}." for name, why in result["skipped_dtypes"].items()]
    if result["modes"]:
        lines += [f"{cfg.height}x{cfg.width}, batch {cfg.batch} (one guided step), best of {cfg.repeats} calls "
                  "after a first call.", "",
                  "| dtype | mode | first call s | s / call | UNet GFLOP/s | GEMM GFLOP/s (n) | of GEMM |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dtype']} | {r['mode']} | {r['first_s']:.1f} | {r['seconds']:.2f} | {r['gflops']:.0f} | "
                  f"{r['gemm_gflops']:.0f} ({r['gemm_n']}) | {100 * r['fraction_of_gemm']:.0f}% |" for r in result["modes"]]
        lines.append("")
    if result["widths"]:
        names = [d for d in ("float32", "bfloat16") if d in result["widths"][0]]
        lines += [f"SD-shaped UNets of widths (w, 2w, 4w, 4w) at {cfg.widths_size}x{cfg.widths_size}, "
                  f"batch {cfg.batch}, eager:", "",
                  "| w | parameters | " + " | ".join(f"{d} ms / call" for d in names) + " | bfloat16 / float32 |",
                  "|---|---|" + "---|" * len(names) + "---|"]
        for r in result["widths"]:
            ratio = f"{r['bfloat16'] / r['float32']:.2f}" if len(names) == 2 else "-"
            lines.append(f"| {r['width']} | {r['params'] / 1e6:.1f}M | "
                         + " | ".join(f"{1000 * r[d]:.1f}" for d in names) + f" | {ratio} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def load_unet_calls(path: str | None, overrides: list[str]):
    """The config from YAML and key=value overrides, with the strict schema."""
    from pathlib import Path

    return config.load(Path(path) if path else None, overrides, schema=UnetCallsConfig)
