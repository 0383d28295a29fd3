"""The half-precision VAE's float32 retry does not break the next batch, the next img2img encode or the next
comparison cell: later decodes go straight to float32, the VAE is back in its dtype between them, and the image
after a retry is the one its seed gives alone (the overflow is patched in, as in
tests/test_performance.py::test_half_precision_vae_nan_is_retried_in_float32)."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_config
from pipeline.tools.compare import runner as compare, config as compare_config
from pipeline.tools.jobs import runner
from pipeline.run import generate

PICTURE = str(Path(__file__).parents[1] / "configs" / "inputs" / "shapes-red-circle.png")


@pytest.fixture
def overflowing_vae(monkeypatch, caplog):
    """Every run's VAE decode gives NaN while the VAE is in bfloat16; returns the dtypes each decode ran in."""
    real_load, dtypes = generate.load, []

    def load(plan):
        components = real_load(plan)
        vae, real = components.vae, type(components.vae).decode

        def overflowing(self, z, **kwargs):
            out = real(self, z, **kwargs)
            dtypes.append(self.dtype)
            return (out[0] * float("nan"),) if self.dtype == torch.bfloat16 else out

        vae.decode = overflowing.__get__(vae)
        return components

    monkeypatch.setattr(generate, "load", load)
    monkeypatch.setattr(runner, "load", load)
    caplog.set_level(logging.WARNING, logger="pipeline")
    return dtypes


def pictures(paths) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in paths]


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_the_batch_after_the_retry_decodes(task, overflowing_vae, tiny_model, tmp_path, caplog):
    settings = dict(task=task, image=PICTURE, height=16, width=16, steps=2, model__dtype="bfloat16")
    paths = list(generate.run(make_config(tiny_model, tmp_path / "two", num_images=2, batch_size=1, **settings),
                              progress=False))
    assert len(paths) == 2 and all(p.with_suffix(".yaml").is_file() for p in paths)
    assert overflowing_vae == [torch.bfloat16, torch.float32, torch.float32], "a wasted half decode per batch"
    assert caplog.text.count("decoding again in float32") == 1
    alone = list(generate.run(make_config(tiny_model, tmp_path / "one", seed=1, **settings), progress=False))
    second, second_alone = pictures([paths[1], *alone])
    assert np.array_equal(second, second_alone), "the image after the retry differs from the same seed run alone"
    assert second.std() > 0


def test_the_comparison_cell_after_the_retry_runs(overflowing_vae, tiny_model, tmp_path, caplog):
    cfg = compare_config.load(None, [f"model.path={tiny_model}", f"output_dir={tmp_path}", "model.device=cpu",
                                     "model.dtype=bfloat16", "prompt=a red circle", "compare.schedulers=[ddim, euler]",
                                     "compare.steps=[1, 2]"])
    result = compare.run_comparison(cfg, progress=False)
    assert [c.status for c in result.cells] == ["ok"] * 4, [c.error for c in result.cells]
    assert all(c.image.is_file() for c in result.cells)
    assert overflowing_vae == [torch.bfloat16] + [torch.float32] * 4
    assert caplog.text.count("decoding again in float32") == 1
