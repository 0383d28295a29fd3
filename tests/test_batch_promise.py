"""The README's batch promise at the defaults (model.dtype auto), on the shipped model, in both dtypes auto can pick:
a batch changes an image by float rounding only, and an image's YAML regenerates it (byte for byte from a batch of 1)."""

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.run import config, generate
from pipeline.models import precision

ROUNDING = 2  # levels of 255: measured 1 in float32, 2 in bfloat16 (README, batch_size)


def run(tmp_path, name, *overrides):
    cfg = config.load("configs/txt2img.yaml", ["steps=5", "num_images=3", f"output_dir={tmp_path / name}", *overrides])
    return list(generate.run(cfg, progress=False))


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=int)


@pytest.fixture(params=["auto here", "auto on a native-bfloat16 CPU"])
def auto_dtype(request, monkeypatch):
    """The defaults as they are on this machine, and as auto decides where bfloat16 is native and pays."""
    if request.param != "auto here":
        monkeypatch.setattr(precision, "cpu_bfloat16_support", lambda: (True, "patched"))
        monkeypatch.setattr(precision, "CPU_BFLOAT16_MIN_PARAMS", 0)
    return request.param


def test_a_batch_changes_an_image_by_rounding_only(tmp_path, auto_dtype):
    batched = run(tmp_path, "batched", "batch_size=3")
    single = run(tmp_path, "single", "batch_size=1")
    for a, b in zip(batched, single):
        assert a.name.split("-")[1] == b.name.split("-")[1]  # the same seed
        assert np.abs(pixels(a) - pixels(b)).max() <= ROUNDING


def test_saved_yaml_regenerates_its_image(tmp_path, auto_dtype):
    alone = run(tmp_path, "alone", "batch_size=1")[1]
    batched = run(tmp_path, "batched", "batch_size=3")[1]
    saved = yaml.safe_load(alone.with_suffix(".yaml").read_text())
    assert saved["model"]["dtype"] == ("float32" if auto_dtype == "auto here" else "bfloat16")  # 3.9M: too few here
    [again] = generate.run(config.load(alone.with_suffix(".yaml"), [f"output_dir={tmp_path / 'again'}"]),
                           progress=False)
    assert Image.open(again).tobytes() == Image.open(alone).tobytes()  # from a batch of one: byte for byte
    text = batched.with_suffix(".yaml").read_text()
    assert text.startswith("# Made in a batch of 3")
    [again] = generate.run(config.load(batched.with_suffix(".yaml"), [f"output_dir={tmp_path / 'again2'}"]),
                           progress=False)
    assert np.abs(pixels(again) - pixels(batched)).max() <= ROUNDING
