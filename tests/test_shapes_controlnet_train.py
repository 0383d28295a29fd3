"""The recipe's ControlNet stage: it trains from an exported base (`after=`), resumes, exports a ControlNetModel
folder that the controls' normal path loads, and refuses a map encoder that does not match the VAE."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from PIL import Image
from safetensors import safe_open

from pipeline.run import config, generate
from pipeline.lab.shapes.controlnet_train import ControlledUNet, build_controlnet, control_inputs
from pipeline.lab.shapes.models import build_unet
from pipeline.lab.shapes.layout import layout_batch, layout_map, layout_mask
from pipeline.lab.shapes.train import main
from pipeline.lab.shapes.train_config import load_config
from pipeline.lab.shapes.world import make_scenes, render

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "train-tiny.yaml")


def test_layout_map_is_the_scenes_shapes_white_on_black() -> None:
    scenes = make_scenes(3, 12, 0.5)
    for scene in scenes:
        image, _ = render(scene)
        drawn = layout_map(scene)
        assert set(np.unique(drawn)) <= {0, 255} and (drawn[..., 0] == drawn[..., 2]).all()
        background = np.all(np.abs(image.astype(int) - image[0, 0].astype(int)) <= 40, axis=-1)
        assert np.mean(layout_mask(scene) == ~background) > 0.97  # the map covers what the scene paints
    batch = layout_batch(scenes)
    assert batch.shape == (12, 3, 64, 64) and batch.dtype == np.float32 and set(np.unique(batch)) == {0.0, 1.0}


def test_the_stage_trains_from_an_export_resumes_and_loads_through_the_controls(tmp_path: Path, monkeypatch) -> None:
    export, controlnet = tmp_path / "model", tmp_path / "controlnet"
    common = [TINY, f"run_dir={tmp_path / 'run'}", f"export_dir={export}", f"controlnet.export_dir={controlnet}",
              "export_dtype=float16"]
    main(common + ["until=export"])
    main(common + ["after=inpaint", "until=controlnet", "controlnet.steps=1"])
    main(common + ["after=inpaint", "until=controlnet", "controlnet.steps=2"])  # resumes from step 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"]["controlnet"]["bytes"] > 0
    with safe_open(controlnet / "diffusion_pytorch_model.safetensors", "pt") as stored:
        assert {stored.get_slice(k).get_dtype() for k in stored.keys()} == {"F16"}
    model = ControlNetModel.from_pretrained(controlnet)
    assert list(model.config.conditioning_embedding_out_channels) == [4, 4, 4, 4]
    assert torch.load(tmp_path / "run" / "controlnet" / "state.pt", weights_only=False)["step"] == 2

    monkeypatch.chdir(ROOT)
    cfg = config.load(ROOT / "configs" / "controlnet.yaml", [
        f"model.path={export}", f"controlnets.0.path={controlnet}", f"output_dir={tmp_path / 'out'}", "steps=2",
        "num_images=1"])
    [path] = generate.run(cfg, progress=False)
    assert Image.open(path).size == (64, 64) and "ControlNet 0" in Image.open(path).text["parameters"]


def test_the_controlled_unet_is_the_frozen_unet_until_the_zero_convolutions_learn() -> None:
    recipe = load_config(TINY)
    unet = build_unet(recipe.unet, recipe.vae, recipe.text)  # the recipe's UNet, as the unet stage builds it
    controlnet = build_controlnet(unet, recipe.controlnet.conditioning_channels)
    scenes = make_scenes(0, 2)
    x, t, text = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=text).sample
        controlled = ControlledUNet(unet, controlnet)(x, t, text, **control_inputs(scenes)).sample
    assert torch.equal(plain, controlled)  # a fresh ControlNet's zero convolutions add exactly nothing


def test_a_map_encoder_that_does_not_match_the_vae_is_one_sentence() -> None:
    from pipeline.common.errors import UserError

    with pytest.raises(UserError, match="controlnet.conditioning_channels must have one entry per vae"):
        load_config(TINY, ["controlnet.conditioning_channels=[4,4]"])
    with pytest.raises(UserError, match="after must be empty or one of export, depth, inpaint"):
        load_config(TINY, ["until=controlnet", "after=vae"])


def test_the_control_scorer_reads_the_worlds_own_scenes_right() -> None:
    from pipeline.lab.shapes.control_eval import foreground, iou, moved

    scenes = make_scenes(11, 40, 0.4)
    scores = [iou(foreground(render(scene)[0]), layout_mask(scene)) for scene in scenes]
    assert min(scores) >= 0.95  # a rendered scene against its own map: only shades near a palette boundary differ
    assert iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
    one = next(s for s in scenes if s.relation is None)
    elsewhere = moved(one)
    assert elsewhere.shapes[0].position != one.shapes[0].position and elsewhere.shapes[0].kind == one.shapes[0].kind
