"""Measuring tools: section timers on module calls, peak memory, UNet FLOPs and the GEMM rate of this machine."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode


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


def gemm_rate(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    """Achieved FLOP/s of an n x n matrix product in the dtype: this machine's practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)
