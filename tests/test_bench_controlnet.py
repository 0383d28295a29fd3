"""The ControlNet benchmark's code path (scripts/bench_controlnet.py) on the tiny model folder: the timed step gives
the same latents as diffusers' ControlNet pipeline (and the ControlNet changes them), every call is timed, the report
names the CPU; bad settings are one sentence before anything is built."""

import pytest

from pipeline.common.errors import UserError
from pipeline.lab.bench.controlnet import KINDS, load_controlnet_bench, markdown, run_controlnet_bench


def test_bench_on_the_tiny_model(tiny_model):
    cfg = load_controlnet_bench(None, [f"model={tiny_model}", "size=16", "repeats=2", "perturb_std=0.05", "device=cpu"])
    result = run_controlnet_bench(cfg)
    assert result["control_effect"] > 1e-3  # the ControlNet changes the latents, so their parity proves something
    for kind in KINDS:
        assert result[kind]["latents_max_diff"] <= 1e-6 and len(result[kind]["ratio"]) == 2
        for who in ("ours", "diffusers"):
            runs = result[kind][who]["runs"]
            calls = [(r["unet_calls"], r["controlnet_calls"]) for r in runs]
            assert calls == [(1, 1 if kind == "controlnet" else 0)] * 2  # one guided step: one batch-2 call each
            assert all(0 < r["unet"] < r["seconds"] and r["peak_mb"] >= 0 for r in runs)
    assert result["params"]["controlnet"] < result["params"]["unet"]
    assert 0 < result["gflop"]["controlnet"] < result["gflop"]["unet"]
    text = markdown(result, cfg)
    assert "CPU: " in text and "| measure | with ControlNet | UNet only |" in text
    assert "ours / diffusers: median [min, max]" in text and "What the ControlNet adds" in text


@pytest.mark.parametrize("override", ["size=20", "repeats=0", "scheduler=nope"])
def test_bad_settings_are_refused_before_building(override, monkeypatch):
    monkeypatch.setattr("pipeline.lab.bench.controlnet.build", lambda *a: pytest.fail("built before checking"))
    with pytest.raises(UserError):
        run_controlnet_bench(load_controlnet_bench(None, [override]))
