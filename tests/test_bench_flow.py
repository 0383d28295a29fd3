"""The flow benchmark's code path (scripts/bench_flow.py) at tiny widths: our SD3 step equals diffusers' on the same
modules, the docs section names the CPU, and FLUX's full-size parts count what Black Forest Labs and OpenAI publish."""

from pipeline.lab.bench.flow import flux_memory, load_flow_bench, run_flow_bench
from pipeline.lab.bench.flow_report import markdown


def test_bench_at_tiny_widths():
    cfg = load_flow_bench(None, ["small=true", "sizes=[64]", "repeats=[1]", "flux_size=64"])
    result = run_flow_bench(cfg)
    [size] = result["sizes"]
    assert size["pixels"]["max"] == 0 and size["ours"]["seconds"] > 0 and size["diffusers"]["seconds"] > 0
    assert result["flux"]["double_s"] > 0 and result["flux"]["single_s"] > 0
    text = markdown(result, cfg)
    assert "CPU:" in text and "| max pixel diff ours vs diffusers | 0 |" in text and "| all |" in text


def test_full_flux_parts_have_their_published_sizes():
    """FLUX.1-dev is announced as a 12B transformer; CLIP ViT-L/14's text model has 123.06M parameters."""
    memory = flux_memory()
    params = memory["params"]
    assert round(params["transformer"] / 1e9) == 12 and params["text_encoder (CLIP-L)"] == 123_060_480
    assert 4.7e9 < params["text_encoder_2 (T5-XXL)"] < 4.8e9  # T5 v1.1 XXL's encoder half
    assert abs(memory["gb"]["float32"]["transformer"] - 2 * memory["gb"]["bfloat16"]["transformer"]) < 1e-9
