"""The shipped ControlNet (models/tiny-shapes-controlnet) loads through the controls' normal path from
configs/controlnet.yaml and does what docs/shapes-model.md measured, on a few held-out scenes: shapes where the map
puts them, colours from the prompt, the map over a prompt naming another place, weight 0 the base exactly, and the
image following the map more as the window grows."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.run import config, generate
from pipeline.lab.shapes.control_eval import (
    Controlled, HELD_OUT_SEED, disagree, follow, foreground, iou, mean_iou, weight_zero,
)
from pipeline.lab.shapes.world import make_scenes

ROOT = Path(__file__).resolve().parents[1]
# Bars a little under what seed 0 measured on these scenes at the config's guidance 3 (the 1200-step ControlNet):
# IoU >= 0.8 in 100% of 12 (the bar is 90%: one miss in 12 still passes), colour 75.0 (9 of 12; on 100
# scenes 93%), background 100; the map won in 8 of 8 (docs/shapes-model.md has the 100-scene figures: 94% at
# IoU >= 0.8).
FOLLOW_BARS = {"iou_at_least_0.8": 90.0, "colour": 65.0, "background": 90.0}
CONTROL_WINS_BAR = 75.0


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """configs/controlnet.yaml as shipped, loaded once."""
    cfg = config.load(ROOT / "configs" / "controlnet.yaml")
    return Controlled(cfg, tmp_path_factory.mktemp("maps"))


def test_the_shipped_config_runs_and_names_its_controlnet(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = config.load(ROOT / "configs" / "controlnet.yaml", [f"output_dir={tmp_path}", "num_images=1"])
    [path] = generate.run(cfg, progress=False)
    image = Image.open(path)
    assert image.size == (64, 64) and "Model: tiny-shapes-controlnet" in image.text["parameters"]
    map_mask = np.asarray(Image.open(ROOT / cfg.controlnets[0].image).convert("L")) > 127
    assert iou(foreground(image), map_mask) >= 0.8


def test_shapes_follow_the_map_and_colours_the_prompt(runner):
    scores = follow(runner, make_scenes(HELD_OUT_SEED, 12, 0.4), [0])
    for key, bar in FOLLOW_BARS.items():
        assert scores[key] >= bar, scores


def test_the_map_wins_over_a_prompt_naming_another_place(runner):
    scenes = [s for s in make_scenes(HELD_OUT_SEED, 20, 0.0)][:8]
    assert disagree(runner, scenes, [0])["control_wins"] >= CONTROL_WINS_BAR


def test_weight_zero_is_the_base_exactly(runner):
    assert weight_zero(runner, make_scenes(HELD_OUT_SEED, 2, 0.4), [0, 1])["largest_difference"] == 0


def test_a_longer_window_follows_the_map_more(runner):
    scenes = make_scenes(HELD_OUT_SEED, 4, 0.4)
    whole = mean_iou(runner, scenes, [0], start=0.0, end=1.0)
    assert mean_iou(runner, scenes, [0], start=0.0, end=0.2) < whole
    assert mean_iou(runner, scenes, [0], start=0.6, end=1.0) < whole
