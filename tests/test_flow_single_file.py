"""SD3 / SD3.5 and FLUX.1 checkpoints in their released one-file layouts: tiny models written as one file give the
images of their folders within 1/255, the family and config come from the keys, parts a file lacks come from
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
from pipeline.models.single_file.detect import FAMILIES_DIR, config_folder, pick_family
from pipeline.models.single_file.header import read_header
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
    # byte for byte on AVX-512; AVX2 kernels take the weights' memory alignment into account, and a file's tensors are
    # not aligned as a folder's (4 against 8 bytes here): 1/255 in 0.02% of SD3's pixels
    assert np.abs(found.astype(int) - expected).max() <= 1


def _file(folders, kind, tmp_path, **layout):
    tensors = sd3_layout(folders[kind], **layout) if kind.startswith("sd3") else flux_layout(folders[kind], **layout)
    return write_flow_checkpoint(tensors, tmp_path / f"{kind}.safetensors")


def _one_sentence(err) -> str:
    text = str(err.value)
    assert "\n" not in text and text.endswith(".")
    return text


def test_the_family_and_config_come_from_the_keys(folders, tmp_path):
    sd3, sd35, flux = (read_header(_file(folders, k, tmp_path), False) for k in ("sd3", "sd35", "flux"))
    assert pick_family(sd3, tmp_path).name == pick_family(sd35, tmp_path).name == "sd3"
    assert pick_family(flux, tmp_path).name == "flux"
    assert config_folder(sd3, tmp_path, "") == FAMILIES_DIR / "sd3-medium"
    assert config_folder(sd35, tmp_path, "") == FAMILIES_DIR / "sd3.5-medium"  # its x_block.attn2
    assert config_folder(flux, tmp_path, "") == FAMILIES_DIR / "flux-dev"  # its guidance_in
    assert config_folder(sd3, tmp_path, "sd3.5-large") == FAMILIES_DIR / "sd3.5-large"
    with pytest.raises(UserError) as err:
        config_folder(flux, tmp_path, "sd3-medium")
    assert "flux-dev, flux-schnell" in _one_sentence(err)


def test_a_file_of_another_size_is_one_sentence_before_loading(folders, tmp_path):
    file = _file(folders, "sd35", tmp_path)
    with pytest.raises(UserError) as err:
        inspect_model(str(file))  # the tiny MMDiT read with the shipped sd3.5-medium configs
    assert "does not fit the transformer of" in _one_sentence(err) and "sd3.5-medium" in str(err.value)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(UserError) as err:
        inspect_model(str(truncated), config=str(folders["sd3"]))
    assert "incomplete or damaged" in _one_sentence(err)
    tensors = sd3_layout(folders["sd3"])
    del tensors["model.diffusion_model.joint_blocks.1.x_block.attn.qkv.weight"]
    partial = write_flow_checkpoint(tensors, tmp_path / "partial.safetensors")
    with pytest.raises(UserError) as err:
        inspect_model(str(partial), config=str(folders["sd3"]))
    assert "holds no whole Stable Diffusion 3 transformer" in _one_sentence(err)


def test_parts_a_file_lacks_come_from_a_diffusers_folder_or_are_left_out(folders, tmp_path):
    flux = _file(folders, "flux", tmp_path)  # BFL's layout: the transformer alone
    with pytest.raises(UserError) as err:
        inspect_model(str(flux), config="flux-dev")
    assert "holds no text_encoder, text_encoder_2, vae" in _one_sentence(err) and "diffusers-format" in str(err.value)
    sd3_configs = _without_weights(folders["sd3"], tmp_path / "configs", ["text_encoder_3"])
    without_t5 = write_flow_checkpoint(sd3_layout(folders["sd35"]), tmp_path / "no-t5.safetensors")
    info = inspect_model(str(without_t5), config=str(folders["sd35"]))
    assert "text_encoder_3" not in info.present and "tokenizer_3" not in info.present  # left out, as the folder
    with_t5 = _file(folders, "sd3", tmp_path)
    shutil.rmtree(sd3_configs / "tokenizer_3")  # as a shipped folder: T5's tokenizer cannot be shipped
    with pytest.raises(UserError) as err:
        inspect_model(str(with_t5), config=str(sd3_configs))
    assert "T5's tokenizer is not shipped" in _one_sentence(err) and "model.without=[t5]" in str(err.value)
    info = inspect_model(str(with_t5), config=str(sd3_configs), without=("t5",))
    assert "text_encoder_3" not in info.present and info.single_file
