"""Single-file ControlNets without `config`: the shipped configs (configs/single_file/controlnet-sd15, -sdxl) build
the released models' sizes and fit the shipped SD 1.5 / SDXL UNet configs; the file's tensor names pick the
layout's config and its shapes are checked against it before loading; a tiny ControlNet saved in the original
layout runs without `config` and equals its folder; mistakes are one sentence."""

import json
import shutil

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import ControlNetModel, UNet2DConditionModel
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import save_file

from conftest import make_config, max_pixel_difference
from pipeline.common.errors import UserError
from pipeline.controls import controlnet_file
from pipeline.controls.controlnet_check import FIT_KEYS
from pipeline.controls.controlnet_file import SHIPPED_DIR, check_tensors, detected_layout
from pipeline.lab.fixtures.tiny_controlnet import build_tiny_controlnet, original_key, write_controlnet_checkpoint
from pipeline.run import generate

# parameters of the models the shipped configs build, counted on the meta device (no published count found to cite;
# SD 1.5's in float32 make 1.445 GB, the size its released files are listed at)
SD15_PARAMETERS, SDXL_PARAMETERS = 361_279_120, 1_251_014_160
ENCODER = ("conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block")  # what a ControlNet copies


def shipped(name: str) -> dict:
    """A shipped ControlNet config."""
    return json.loads((SHIPPED_DIR / name / "config.json").read_text())


def on_meta(cls, config: dict):
    """The model a config builds, without memory for its weights."""
    with init_empty_weights():
        return cls.from_config(config)


def count(module, prefixes=None) -> int:
    """Parameters of a module, or of its parameters whose names start with one of `prefixes`."""
    return sum(p.numel() for name, p in module.named_parameters() if prefixes is None or name.startswith(prefixes))


@pytest.mark.parametrize("name, family, parameters", [("controlnet-sd15", "sd1", SD15_PARAMETERS),
                                                      ("controlnet-sdxl", "sdxl", SDXL_PARAMETERS)])
def test_shipped_configs_are_the_released_sizes_and_fit_the_shipped_unets(name, family, parameters):
    """Its size is the family UNet's encoder half plus the control image's embedding and the zero convolutions."""
    config = shipped(name)
    unet_config = json.loads((SHIPPED_DIR / family / "unet" / "config.json").read_text())
    controlnet, unet = on_meta(ControlNetModel, config), on_meta(UNet2DConditionModel, unet_config)
    assert count(controlnet) == parameters
    added = count(controlnet, ("controlnet_cond_embedding", "controlnet_down_blocks", "controlnet_mid_block"))
    assert count(controlnet) == count(unet, ENCODER) + added
    assert all(config.get(key) == unet_config.get(key) for key in FIT_KEYS)
    assert config["conditioning_channels"] == 3


def original_names(model: ControlNetModel) -> dict[str, tuple[int, ...]]:
    """The model's tensors under lllyasviel's original names (`control_model.` prefix), as its releases store them."""
    layers = model.config.layers_per_block
    return {"control_model." + original_key(k, layers): tuple(v.shape) for k, v in model.state_dict().items()}


def test_released_layouts_pick_their_shipped_config_and_fit_it():
    """At full size, on the meta device: SD 1.5 in the original layout, SDXL in diffusers' names (its release)."""
    sd15, sdxl = shipped("controlnet-sd15"), shipped("controlnet-sdxl")
    sd15_tensors = original_names(on_meta(ControlNetModel, sd15))
    sdxl_tensors = {k: tuple(v.shape) for k, v in on_meta(ControlNetModel, sdxl).state_dict().items()}
    sd15_diffusers = {k: tuple(v.shape) for k, v in on_meta(ControlNetModel, sd15).state_dict().items()}
    assert [detected_layout(t) for t in (sd15_tensors, sd15_diffusers, sdxl_tensors)] == \
        ["controlnet-sd15", "controlnet-sd15", "controlnet-sdxl"]
    check_tensors(sd15_tensors, sd15, "controlnets[0]", "sd15.safetensors", "controlnet-sd15")
    check_tensors(sdxl_tensors, sdxl, "controlnets[0]", "sdxl.safetensors", "controlnet-sdxl")
    with pytest.raises(UserError, match="must have shape"):
        check_tensors(sd15_tensors, sdxl, "controlnets[0]", "sd15.safetensors", "controlnet-sdxl")


@pytest.fixture(scope="module")
def files(tiny_model, tmp_path_factory):
    """A tiny SD 1.x ControlNet's folder, the same in one file in the original layout, and a 16x16 control map."""
    folder = tmp_path_factory.mktemp("controlnet_file")
    net = build_tiny_controlnet(folder / "net", tiny_model)
    square = Image.new("RGB", (16, 16))
    square.paste((255, 255, 255), (4, 4, 12, 12))
    square.save(folder / "square.png")
    return {"net": net, "file": write_controlnet_checkpoint(net, folder / "net.safetensors"),
            "square": folder / "square.png"}


def run(model, tmp_path, entry) -> list[Image.Image]:
    """Two images of the tiny model with one controlnets entry."""
    cfg = make_config(model, tmp_path / f"out{len(list(tmp_path.iterdir()))}", prompt="a red circle", steps=3,
                      seed=3, num_images=2, scheduler__name="ddim")
    return [Image.open(p).convert("RGB") for p in generate.run(OmegaConf.merge(cfg, {"controlnets": [entry]}),
                                                               progress=False)]


def test_a_tiny_original_layout_file_runs_without_config(tiny_model, files, tmp_path, monkeypatch):
    """The tiny file stands in for an SD 1.5 release: its cross-attention width (32) is taken as SD 1.x's and the
    shipped folder holds its config; the run picks that folder by the file's names and equals the folder's run."""
    shipped_dir = tmp_path / "shipped"
    (shipped_dir / "controlnet-sd15").mkdir(parents=True)
    shutil.copy(files["net"] / "config.json", shipped_dir / "controlnet-sd15")
    monkeypatch.setattr(controlnet_file, "SHIPPED_DIR", shipped_dir)
    monkeypatch.setattr(controlnet_file, "SD1_CONTEXT", 32)
    single = run(tiny_model, tmp_path, {"path": str(files["file"]), "image": str(files["square"])})
    folder = run(tiny_model, tmp_path, {"path": str(files["net"]), "image": str(files["square"])})
    assert max_pixel_difference(single, folder) == 0


@pytest.mark.parametrize("config", ["controlnet-sd15", str(SHIPPED_DIR / "controlnet-sd15")])
def test_mistakes_are_one_sentence_before_loading(config, tiny_model, files, tmp_path, capsys, no_weights,
                                                  monkeypatch):
    """A file whose layout no shipped config has; a damaged file; a file that does not fit the named config (by
    its shipped name or its folder)."""
    from test_sdxl_runs import refused

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(ControlNetModel, "from_single_file", refuse)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"0")
    cases = [({"path": str(files["file"])}, f"controlnets[0].path {files['file']} is a single file in a layout "
              "without a shipped config (those are controlnet-sd15, controlnet-sdxl); set controlnets[0].config to "
              "the folder or hub id holding its config.json."),
             ({"path": str(other)}, "in a layout without a shipped config"),
             ({"path": str(damaged)}, f"controlnets[0].path {damaged} cannot be read as a .safetensors file"),
             ({"path": str(files["file"]), "config": config},
              f"controlnets[0].path {files['file']} does not fit the ControlNet config of "
              f"{SHIPPED_DIR / 'controlnet-sd15'}: ")]
    for n, (entry, expected) in enumerate(cases):
        cfg = make_config(tiny_model, tmp_path / f"out{n}", prompt="a red circle")
        cfg = OmegaConf.merge(cfg, {"controlnets": [{"image": str(files["square"]), **entry}]})
        assert expected in refused(cfg, capsys)
