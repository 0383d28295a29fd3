"""SD3 / SD3.5 and FLUX.1 checkpoints in their released one-file layouts: tiny models written as one file give the
images of their folders byte for byte, the family and config come from the keys, parts a file lacks come from
model.config's folder (or T5 is left out), and a wrong or truncated file is one sentence before any weights load."""

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import make_config
from pipeline.common.errors import UserError
from pipeline.lab.fixtures.tiny_flux import build_tiny_flux
from pipeline.lab.fixtures.tiny_sd3 import build_tiny_sd3
from pipeline.lab.fixtures.to_flow_file import flux_layout, sd3_layout, write_flow_checkpoint
from pipeline.models.inspect import inspect_model
from pipeline.run import generate

SHARED = dict(prompt="a red circle", negative_prompt="blue", steps=2, seed=3, height=32, width=48,
              scheduler__name="Euler")


def _images(cfg) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in generate.run(cfg, progress=False)])


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """Tiny SD3 (with T5), SD3.5-like (without) and FLUX dev-like folders, as their releases hold CLIP-L."""
    root = tmp_path_factory.mktemp("flow-files")
    return {"sd3": build_tiny_sd3(root / "sd3", released=True),
            "sd35": build_tiny_sd3(root / "sd35", t5=False, sd35=True, released=True),
            "flux": build_tiny_flux(root / "flux")}


def _without_weights(folder, target, parts):
    """A copy of the folder without the weight files of `parts`: what the file holds can come only from the file."""
    shutil.copytree(folder, target)
    for part in parts:
        for file in (target / part).glob("*.safetensors"):
            file.unlink()
    return target


@pytest.mark.parametrize("kind", ["sd3", "sd35", "flux", "flux-comfy"])
def test_a_released_layout_file_gives_the_images_of_its_folder(kind, folders, tmp_path):
    folder = folders[kind.split("-")[0]]
    tensors = sd3_layout(folder) if kind.startswith("sd3") else flux_layout(folder, comfy=kind == "flux-comfy")
    file = write_flow_checkpoint(tensors, tmp_path / f"{kind}.safetensors")
    held = ["transformer"] if kind == "flux" else [p.name for p in folder.iterdir() if p.is_dir()]
    configs = _without_weights(folder, tmp_path / "configs", held)
    guidance = dict(guidance_scale=3.5) if kind.startswith("flux") else {}
    expected = _images(make_config(folder, tmp_path / "folder", **SHARED, **guidance))
    assert expected.std() > 2, "trivial images"
    found = _images(make_config(file, tmp_path / "file", model__config=str(configs), **SHARED, **guidance))
    assert np.array_equal(found, expected)
