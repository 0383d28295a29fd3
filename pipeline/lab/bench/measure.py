"""Measuring tools: section timers on module calls, peak memory, UNet FLOPs and the GEMM rate of this machine."""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode


# Environment variables that cap the instruction sets torch, oneDNN and MKL use: set, they make this CPU behave as
# an older one (how the AVX2-only figures in docs/benchmarks.md were measured on an AVX-512 machine).
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so a clock reading means something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed_calls(device: torch.device, targets: dict[str, tuple[object, str]]) -> Iterator[dict[str, float]]:
    """Time every call of obj.method for each named target (synchronising on GPU); restore on exit."""
    totals = {name: 0.0 for name in targets}
    counts = {f"{name}_calls": 0 for name in targets}
    originals = {}
    for name, (obj, method) in targets.items():
        original = getattr(obj, method)
        originals[name] = (obj, method, original if method in vars(obj) else None)

        def timed(*args, _original=original, _name=name, **kwargs):
            sync(device)
            start = time.perf_counter()
            out = _original(*args, **kwargs)
            sync(device)
            totals[_name] += time.perf_counter() - start
            counts[f"{_name}_calls"] += 1
            return out

        setattr(obj, method, timed)
    try:
        yield totals
    finally:
        for obj, method, own in originals.values():
            if own is None:
                delattr(obj, method)
            else:
                setattr(obj, method, own)
        totals.update(counts)


def _rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@contextmanager
def peak_memory(device: torch.device, interval: float = 0.005) -> Iterator[dict[str, float]]:
    """Peak memory over the block above its start: GPU allocator peak on CUDA, sampled RSS on the CPU."""
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield result
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result["peak_mb"] = (max(peak[0], _rss_bytes()) - base) / 2**20


def unet_flops(unet, batch: int, latent_hw: tuple[int, int], context: torch.Tensor) -> int:
    """FLOPs of one UNet call on a batch, counted by torch.utils.flop_counter."""
    sample = torch.randn(batch, unet.config.in_channels, *latent_hw, device=context.device, dtype=context.dtype)
    t = torch.tensor(500, device=context.device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(sample, t, encoder_hidden_states=context[:1].expand(batch, -1, -1))
    return counter.get_total_flops()


def _product_seconds(a: torch.Tensor, b: torch.Tensor, device: torch.device, repeats: int) -> float:
    """Mean wall seconds of one a @ b over `repeats` products."""
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return (time.perf_counter() - start) / repeats


def gemm_rate(device: torch.device, dtype: torch.dtype, budget: float = 3.0, largest: int = 4096) -> tuple[float, int]:
    """This machine's practical peak in the dtype: the best FLOP/s of n x n products, n doubling from 256 while
    the next size fits the time budget (an emulated dtype stops at the small sizes instead of running minutes).

    Returns (FLOP/s, the largest n measured)."""
    spent, best, n = time.perf_counter(), 0.0, 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        once = _product_seconds(a, b, device, 1)  # also the warm-up
        repeats = max(1, int(budget / 8 / once))
        seconds = once if once > budget / 4 else _product_seconds(a, b, device, repeats)
        best = max(best, 2 * n**3 / seconds)
        left = budget - (time.perf_counter() - spent)
        if n * 2 > largest or 8 * once + budget / 8 > left:  # the next size: a product 8x longer, then repeats
            return best, n
        n *= 2


def cpu_description() -> dict[str, object]:
    """The processor a figure was measured on: model name, torch's kernel capability, bfloat16 support, threads."""
    from pipeline.models.precision import cpu_bfloat16_support

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    native, described = cpu_bfloat16_support()
    limits = {name: os.environ[name] for name in ISA_LIMITS if os.environ.get(name)}
    return {"model": model, "capability": torch.backends.cpu.get_cpu_capability(), "bfloat16": described,
            "native_bfloat16": native, "threads": torch.get_num_threads(), "cores": os.cpu_count(), "limits": limits}


def describe_cpu(cpu: dict) -> str:
    """One line for a report: the CPU, what torch dispatches, bfloat16, threads, and any instruction-set caps."""
    capped = ", ".join(f"{k}={v}" for k, v in cpu.get("limits", {}).items())
    return (f"CPU: {cpu['model']}, {cpu['cores']} cores, torch capability {cpu['capability']} ({cpu['bfloat16']}), "
            f"{cpu['threads']} torch threads" + (f"; instruction sets capped by {capped}" if capped else "") + ".")
