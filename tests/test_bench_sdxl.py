"""The SDXL benchmark's code path (scripts/bench_sdxl.py) on a tiny SDXL folder: same images as diffusers, timings,
memory, a FLOP count that includes attention, and the docs section naming the CPU."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from torch.utils.flop_counter import FlopCounterMode

from pipeline.lab.bench.sdxl import UNET, load_sdxl_bench, markdown, run_sdxl_bench, unet_flops
from pipeline.lab.fixtures.tiny_sdxl import build_tiny_sdxl

ROOT = Path(__file__).resolve().parents[1]


def test_meta_flop_count_equals_a_real_count_with_attention(tmp_path):
    folder = build_tiny_sdxl(tmp_path / "tiny")
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    unet.set_attn_processor(AttnProcessor())  # baddbmm/bmm, which the counter sees (CPU flash attention it does not)
    added = {"text_embeds": torch.zeros(2, 32), "time_ids": torch.zeros(2, 6)}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(torch.zeros(2, 4, 16, 16), torch.tensor(500), encoder_hidden_states=torch.zeros(2, 77, 64),
             added_cond_kwargs=added)
    assert unet_flops(unet, 2, (16, 16)) == counter.get_total_flops() > 0


def test_real_sdxl_unet_config_has_its_parameter_count():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**UNET)
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684


def test_bench_on_a_tiny_sdxl_folder(tmp_path):
    folder = build_tiny_sdxl(tmp_path / "tiny")
    cfg = load_sdxl_bench(None, [f"model={folder}", "sizes=[32,48]", "repeats=[2,1]", "gemm_budget_s=0.1"])
    result = run_sdxl_bench(cfg)
    first, second = result["sizes"]
    assert (first["size"], second["size"], len(first["ratio"]), len(second["ratio"])) == (32, 48, 2, 1)
    assert first["pixels"]["max"] <= 1 and second["pixels"]["max"] <= 1  # the very same work
    for who in ("ours", "diffusers"):
        assert all(r["unet_calls"] == 1 and 0 < r["unet_s"] < r["seconds"] for r in first[who]["runs"])
        assert first[who]["peak_rss_mb"] >= result["rss_after_build_mb"] - 1
    assert second["unet_gflop_per_call"] > first["unet_gflop_per_call"] > 0 and first["gemm_gflops"] > 0
    text = markdown(result, cfg)
    assert "CPU: " in text and "| 32x32 | 48x48 |" in text and "ours / diffusers" in text


def test_script_refuses_mismatched_sizes_and_repeats():
    run = subprocess.run([sys.executable, "scripts/bench_sdxl.py", "sizes=[512,1024]", "repeats=[3]"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2 and "sizes and repeats must be lists of the same length" in run.stderr
