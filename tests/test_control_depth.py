"""A ControlNet entry's `depth` preprocessor: its map is what transformers' depth-estimation pipeline gives for the
same tiny DPT (diffusers' ControlNet depth example) in three channels; a run with it equals a run given that map as a
plain control image; the estimator comes from the entry's depth_estimator or the model folder's own parts; mistakes
are one sentence before any weights load."""

import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from transformers import DPTForDepthEstimation, pipeline

from conftest import make_config, max_pixel_difference
from pipeline.lab.fixtures.tiny_controlnet import build_tiny_controlnet
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from pipeline.models.depth_estimator import PARTS, Source, load_estimator
from pipeline.run import generate

CHANGED = 8  # the least pixel difference that shows a setting changes the image
SEED, COUNT, STEPS, PROMPT = 3, 2, 3, "a red circle"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SD 1.x folder carrying a tiny DPT as depth2img folders do, its ControlNet, the same DPT as one flat
    folder (config.json beside preprocessor_config.json, as Intel/dpt-large is laid out), and a 24x24 picture."""
    root = tmp_path_factory.mktemp("control_depth")
    model = build_tiny_model(root / "model", depth_estimator=True)
    flat = root / "dpt"
    shutil.copytree(model / "depth_estimator", flat)
    shutil.copy(model / "feature_extractor" / "preprocessor_config.json", flat)
    y, x = np.mgrid[0:24, 0:24]
    picture = np.stack([x * 10, y * 10, (x + y) * 5], axis=-1).astype(np.uint8)
    picture[6:18, 8:16] = 255
    Image.fromarray(picture).save(root / "picture.png")
    return {"model": model, "net": build_tiny_controlnet(root / "net", model, std=0.3), "dpt": flat,
            "picture": root / "picture.png", "plain": build_tiny_model(root / "plain")}


def run(world, tmp_path, units, model=None) -> list[Image.Image]:
    """COUNT images of the tiny model with the given controlnets entries."""
    cfg = make_config(model or world["model"], tmp_path / f"out{len(list(tmp_path.iterdir()))}", prompt=PROMPT,
                      steps=STEPS, seed=SEED, num_images=COUNT, scheduler__name="ddim")
    cfg = OmegaConf.merge(cfg, {"controlnets": units})
    return [Image.open(p).convert("RGB") for p in generate.run(cfg, progress=False)]


def our_map(world, source: Source) -> np.ndarray:
    """The depth preprocessor's map of the picture, with the estimator read from `source`."""
    import torch

    from pipeline.controls.preprocess import control_map

    estimator = load_estimator(source, torch.device("cpu"), torch.float32)
    return np.asarray(control_map(str(world["picture"]), "depth", "controlnets[0]", estimator))


def test_the_map_is_the_depth_estimation_pipelines_in_three_channels(world):
    """diffusers' example: depth_estimator(image)["depth"] -> array[:, :, None] -> three channels -> PIL."""
    estimator = DPTForDepthEstimation.from_pretrained(world["dpt"])
    from transformers import AutoImageProcessor

    estimate = pipeline("depth-estimation", model=estimator, image_processor=AutoImageProcessor.from_pretrained(
        world["dpt"]), device="cpu")
    expected = np.asarray(estimate(Image.open(world["picture"]).convert("RGB"))["depth"])
    mine = our_map(world, Source(str(world["dpt"])))
    assert mine.shape == (24, 24, 3) and expected.shape == (24, 24)
    assert (mine == expected[:, :, None]).all()
    assert mine.min() == 0 and mine.max() == 255 and len(np.unique(mine)) > 20  # stretched, and no flat map
    assert (our_map(world, Source(str(world["model"]), *PARTS)) == mine).all()  # the model's parts: the same DPT


def test_a_run_with_the_depth_preprocessor_is_a_run_with_its_map(world, tmp_path):
    entry = {"path": str(world["net"]), "image": str(world["picture"]), "preprocessor": "depth"}
    given = run(world, tmp_path, [{**entry, "depth_estimator": str(world["dpt"])}])
    Image.fromarray(our_map(world, Source(str(world["dpt"])))).save(tmp_path / "map.png")
    as_map = run(world, tmp_path, [{**entry, "preprocessor": "none", "image": str(tmp_path / "map.png")}])
    assert max_pixel_difference(given, as_map) == 0
    assert max_pixel_difference(given, run(world, tmp_path, [{**entry, "preprocessor": "none"}])) > CHANGED
    assert max_pixel_difference(given, run(world, tmp_path, [entry])) == 0  # the model's own estimator by default


@pytest.mark.parametrize("setting, expected", [
    (dict(model="plain"), "controlnets[0].preprocessor depth needs a depth estimator: set "
                          "controlnets[0].depth_estimator to a DPT folder or hub id (e.g. Intel/dpt-hybrid-midas); "
                          "model.path {plain} has no depth_estimator and feature_extractor of its own."),
    (dict(depth_estimator="{missing}"), "controlnets[0].depth_estimator {missing} does not exist (a depth estimator "
                                        "folder or an owner/name hub id is needed)."),
    (dict(depth_estimator="{text}"), "controlnets[0].depth_estimator {text} holds a clip_text_model model, not a "
                                     "depth estimator (DPT, ...)."),
    (dict(depth_estimator="{picture}"), "controlnets[0].depth_estimator {picture} is a file; a depth estimator "
                                        "folder or hub id"),
    (dict(depth_estimator="{pickled}"), "controlnets[0].depth_estimator {pickled} has no .safetensors weights; set "
                                        "model.allow_pickle=true to load its pickle weights (weights only)."),
    (dict(depth_estimator="{dpt}", preprocessor="canny"), "controlnets[0].depth_estimator applies to preprocessor "
                                                          "depth; controlnets[0].preprocessor is canny."),
])
def test_mistakes_are_one_sentence_before_loading(setting, expected, world, tmp_path, capsys, no_weights,
                                                  monkeypatch):
    from diffusers import ControlNetModel

    from test_sdxl_runs import refused

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    for cls, name in ((ControlNetModel, "from_pretrained"), (DPTForDepthEstimation, "from_pretrained")):
        monkeypatch.setattr(cls, name, refuse)
    pickled = tmp_path / "pickled"
    shutil.copytree(world["dpt"], pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    (pickled / "pytorch_model.bin").write_bytes(b"0")
    names = {"pickled": str(pickled), "plain": str(world["plain"]), "missing": str(tmp_path / "missing"), "dpt": str(world["dpt"]),
             "text": str(world["model"] / "text_encoder"), "picture": str(world["picture"])}
    model = world[setting.get("model", "model")]
    entry = {"path": str(world["net"]), "image": str(world["picture"]), "preprocessor": "depth",
             **{k: v.format(**names) for k, v in setting.items() if k != "model"}}
    cfg = OmegaConf.merge(make_config(model, tmp_path / "out", prompt=PROMPT), {"controlnets": [entry]})
    assert expected.format(**names) in refused(cfg, capsys)
