"""model.dtype auto decides by what the hardware reports and the model's size; tested with the checks patched both ways."""

import logging

import pytest
import torch
import yaml

from conftest import make_config
from pipeline.run import generate
from pipeline.models import precision
from pipeline.lab.bench.sd15 import UNET as SD15_UNET
from pipeline.common.errors import UserError
from pipeline.models.precision import CPU_BFLOAT16_MIN_PARAMS, choose_dtype, unet_parameters

CPU = torch.device("cpu")


def patch_cpu(monkeypatch, capability: str, avx512_bf16: bool, amx: bool = False):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize("capability,avx512_bf16,amx,expected", [
    ("AVX2", False, False, torch.float32),         # AVX2-only EPYC: bfloat16 is emulated
    ("AVX512", False, False, torch.float32),       # AVX-512 without BF16 (Skylake, Zen 4 is BF16 though)
    ("AVX512", True, False, torch.bfloat16),       # Zen 4/5
    ("AMX", False, True, torch.bfloat16),          # Sapphire Rapids
    ("AVX2", True, False, torch.float32),          # BF16 hardware, but torch told to dispatch AVX2 kernels
    ("DEFAULT", False, False, torch.float32),      # no vector extension torch knows
])
def test_cpu_auto_by_capability_for_a_large_model(monkeypatch, capability, avx512_bf16, amx, expected):
    patch_cpu(monkeypatch, capability, avx512_bf16, amx)
    choice = choose_dtype("auto", CPU, SD15_UNET)
    assert choice.dtype == expected
    assert ("no native bfloat16" in choice.reason) == (expected == torch.float32)
    assert capability in choice.reason


def test_cpu_auto_is_float32_for_a_model_too_small_to_gain(monkeypatch, tiny_model):
    patch_cpu(monkeypatch, "AVX512", True)
    from pipeline.models.inspect import inspect_model

    choice = choose_dtype("auto", CPU, inspect_model("models/tiny-shapes").unet)
    assert choice.dtype == torch.float32 and "too few" in choice.reason
    assert choose_dtype("auto", CPU, inspect_model(str(tiny_model)).unet).dtype == torch.float32


def test_parameter_count_from_the_config_alone():
    assert unet_parameters(SD15_UNET) == 859_520_964  # SD 1.5's published UNet size
    assert unet_parameters(SD15_UNET) > CPU_BFLOAT16_MIN_PARAMS


def test_explicit_dtypes_are_kept_whatever_the_cpu(monkeypatch):
    patch_cpu(monkeypatch, "AVX2", False)
    assert choose_dtype("bfloat16", CPU, SD15_UNET).dtype == torch.bfloat16
    assert not choose_dtype("float32", CPU).auto
    with pytest.raises(UserError, match="model.dtype must be one of auto, float32, float16, bfloat16; got 'fp8'"):
        choose_dtype("fp8", CPU)


def test_cuda_auto_is_float16_unless_the_vae_overflows_and_bfloat16_is_native(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "GPU")
    cuda = torch.device("cuda")
    for native, force_upcast, expected in [(True, False, torch.float16), (True, True, torch.bfloat16),
                                           (False, True, torch.float16), (False, False, torch.float16)]:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda native=native: native)
        assert choose_dtype("auto", cuda, SD15_UNET, {"force_upcast": force_upcast}).dtype == expected
    assert choose_dtype("auto", torch.device("mps"), SD15_UNET).dtype == torch.float16


def test_the_choice_is_said_once_and_saved_in_the_image_yaml(monkeypatch, tiny_model, tmp_path, caplog):
    patch_cpu(monkeypatch, "AVX2", False)
    cfg = make_config(tiny_model, tmp_path, steps=2, model__dtype="auto", num_images=2)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        paths = list(generate.run(cfg, progress=False))
    notes = [r.getMessage() for r in caplog.records if "model.dtype auto" in r.getMessage()]
    assert notes == ["model.dtype auto -> float32: this CPU has no native bfloat16 (capability AVX2, "
                     "no AVX512-BF16 or AMX)."]
    for path in paths:
        assert yaml.safe_load(path.with_suffix(".yaml").read_text())["model"]["dtype"] == "float32"


def test_saved_dtype_regenerates_on_another_cpu(monkeypatch, tiny_model, tmp_path):
    """A YAML saved where auto chose bfloat16 regenerates in bfloat16 on a CPU where auto would not."""
    patch_cpu(monkeypatch, "AVX512", True)
    monkeypatch.setattr(precision, "CPU_BFLOAT16_MIN_PARAMS", 0)  # make the tiny model 'large enough'
    [first] = generate.run(make_config(tiny_model, tmp_path / "a", steps=2, model__dtype="auto"), progress=False)
    saved = yaml.safe_load(first.with_suffix(".yaml").read_text())
    assert saved["model"]["dtype"] == "bfloat16"
    patch_cpu(monkeypatch, "AVX2", False)
    from pipeline.run import config

    again = config.load(first.with_suffix(".yaml"), [f"output_dir={tmp_path / 'b'}"])
    [second] = generate.run(again, progress=False)
    from PIL import Image

    assert Image.open(first).tobytes() == Image.open(second).tobytes()
