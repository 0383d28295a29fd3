"""The benchmark's config schema (configs/bench.yaml), loaded with the same strict machinery as runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

OPTIONS = ("guidance_1", "guidance_cutoff", "attention_slicing", "channels_last", "compile", "deepcache", "token_merging",
           "vae_tiling")


@dataclass
class BenchConfig:
    """What to measure: the model, the work (size, steps, scheduler), repeats, and which options."""

    model: str = "sd15-random"
    device: str = "auto"
    height: int = 256
    width: int = 256
    steps: int = 4
    scheduler: str = "pndm"
    guidance_scale: float = 7.5
    prompt: str = "a large red circle in the centre, blue background"
    seed: int = 0
    num_images: int = 1
    repeats: int = 3
    option_repeats: int = 3  # runs per option (and baseline), the median kept
    dtypes: list[str] = field(default_factory=lambda: ["float32", "bfloat16"])  # ones not native here are skipped
    options: list[str] = field(default_factory=lambda: ["guidance_1", "guidance_cutoff", "attention_slicing"])
    guidance_cutoff: float = 0.5
    deepcache_interval: int = 3
    token_merging: float = 0.5
    vae_tiling_size: int = 1024
    gemm_budget_s: float = 3.0
    output_dir: str = "outputs/bench"
    docs: Optional[str] = "docs/benchmarks.md"
