"""The benchmark runs end to end on a tiny model and reports every figure; speeds are printed, never asserted."""

import json

import pytest
import torch

from pipeline.lab.bench.main import load_bench, run_benchmark
from pipeline.lab.bench.results import append_docs, markdown, write_json
from pipeline.lab.bench.measure import gemm_rate
from pipeline.common.errors import UserError
from pipeline.models.precision import cpu_bfloat16_support


def test_gemm_probe_keeps_to_its_time_budget():
    """An emulated dtype (bfloat16 on an AVX2-only CPU runs ~100x slower) must stop at small sizes, not run minutes."""
    import time

    start = time.perf_counter()
    rate, n = gemm_rate(torch.device("cpu"), torch.float32, budget=0.3)
    assert rate > 0 and 256 <= n <= 4096
    assert time.perf_counter() - start < 0.3 * 4 + 1


def test_benchmark_reports_every_measure(tiny_model, tmp_path):
    bench = load_bench(None, [f"model={tiny_model}", "height=16", "width=16", "steps=2", "repeats=2", "option_repeats=1",
                              "gemm_budget_s=0.5", "vae_tiling_size=32",
                              "options=[guidance_1,guidance_cutoff,channels_last,deepcache,token_merging,vae_tiling]",
                              f"output_dir={tmp_path}", f"docs={tmp_path / 'bench.md'}"])
    result = run_benchmark(bench)
    native = cpu_bfloat16_support()[0]
    assert list(result["same_work"]) == (["float32", "bfloat16"] if native else ["float32"])
    assert ("bfloat16" in result["skipped_dtypes"]) == (not native)
    for dtype in result["same_work"]:
        same = result["same_work"][dtype]
        assert len(same["ours_seconds"]) == len(same["diffusers_seconds"]) == 2
        assert same["ratio"]["min"] <= same["ratio"]["median"] <= same["ratio"]["max"]
        share = result["shares"][dtype]["share"]
        assert abs(sum(share.values()) - 1) < 1e-6 and share["unet"] > 0
        assert result["shares"][dtype]["unet_gflop_per_call"] > 0
    assert result["same_work"]["float32"]["vs_diffusers_pixels"]["max"] <= 2  # the same work, the same image
    assert result["options"]["guidance_1"]["unet_seconds"] > 0
    assert result["options"]["deepcache"]["psnr_vs_baseline"] < float("inf")  # a changed image
    assert result["options"]["channels_last"]["psnr_vs_baseline"] > 30
    assert {"plain", "tiled"} <= set(result["options"]["vae_tiling"])
    text = markdown(result, bench)
    assert "ours / diffusers" in text and "guidance_cutoff" in text and "PSNR dB" in text and "VAE decode of one 32x32" in text
    path = write_json(result, bench.output_dir)
    saved = json.loads(path.read_text())
    assert saved["auto_dtype"] == "float32" and "too few" in saved["auto_reason"] or not native
    assert saved["cpu"]["capability"] and saved["cpu"]["threads"] >= 1 and saved["cpu"]["model"]
    assert f"capability {saved['cpu']['capability']}" in text
    doc = append_docs(text, bench.docs)
    assert doc.read_text().startswith("# Benchmarks")


def test_benchmark_config_errors():
    with pytest.raises(UserError, match="options must be among"):
        run_benchmark(load_bench(None, ["options=[turbo]"]))
    with pytest.raises(UserError, match="dtypes must start with float32"):
        run_benchmark(load_bench(None, ["dtypes=[bfloat16]"]))
    with pytest.raises(UserError, match="unknown key 'stepz'"):
        load_bench(None, ["stepz=3"])


def test_unet_call_table_and_width_sweep(tiny_model):
    """scripts/bench_unet.py's measurements run end to end: every (dtype, mode) row and the width sweep."""
    from pipeline.lab.bench import unet_calls

    cfg = unet_calls.load_unet_calls(None, [f"model={tiny_model}", "height=16", "width=16", "repeats=1",
                                            "modes=[eager,channels_last,sdpa_math]", "widths=[8]", "widths_size=16",
                                            "gemm_budget_s=0.2"])
    result = unet_calls.run_unet_calls(cfg)
    dtypes = ["float32", "bfloat16"] if cpu_bfloat16_support()[0] else ["float32"]
    assert [(r["dtype"], r["mode"]) for r in result["modes"]] == [
        (d, m) for d in dtypes for m in ("eager", "channels_last", "sdpa_math")]
    assert all(r["seconds"] > 0 and 0 < r["fraction_of_gemm"] for r in result["modes"])
    assert result["widths"][0]["params"] > 0 and all(result["widths"][0][d] > 0 for d in dtypes)
    text = unet_calls.markdown(result, cfg)
    assert "| float32 | sdpa_math |" in text and "SD-shaped UNets" in text
    with pytest.raises(UserError, match="modes must be among"):
        unet_calls.run_unet_calls(unet_calls.load_unet_calls(None, ["modes=[warp]"]))
