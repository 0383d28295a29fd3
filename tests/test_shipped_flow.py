"""The shipped flow-matching member (models/tiny-shapes-flow, issue 29 item 7) is a StableDiffusion3Pipeline folder
the SD3 family loads like any SD3 model, runs from configs/flow.yaml with the flow-matching Euler scheduler, and
draws the caption grammar about as the base does (docs/shapes-model.md, "The flow model")."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.lab.shapes.adherence import score_grammar
from pipeline.lab.shapes.family_pictures import loaded
from pipeline.lab.shapes.grammar import grammar_prompts
from pipeline.run import config, generate

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "tiny-shapes-flow"
# One image under what seed 0 measured on every third grammar prompt (guidance 5, Euler 25): one shape 86.7 (13 of 15
# images), two shapes 87.5 (7 of 8); the 207-image figures (93.3 / 68.1, the bar 85.6 / 63.6) are in
# docs/shapes-model.md.
BARS = {"one_shape": 80.0, "two_shapes": 75.0}


@pytest.fixture(scope="module")
def flow():
    """configs/flow.yaml as shipped, loaded once."""
    return loaded(ROOT / "configs" / "flow.yaml", [])


def test_it_is_an_sd3_folder_sharing_the_base_parts(flow):
    _, components = flow
    index = json.loads((MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and index["text_encoder_3"] == [None, None]
    assert components.family.name == "sd3"
    assert components.scheduler_config["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    vae = MODEL / "vae" / "diffusion_pytorch_model.safetensors"
    assert vae.is_symlink() and vae.resolve() == (ROOT / "models" / "tiny-shapes" / "vae" / vae.name).resolve()
    for second in ("text_encoder_2", "tokenizer_2"):
        assert (MODEL / second).is_symlink()


def test_it_follows_the_caption_grammar(flow):
    cfg, components = flow
    assert cfg.guidance_scale == 5.0 and cfg.steps == 25
    summary = score_grammar(components, cfg, [0], grammar_prompts()[::3])
    assert summary["one_shape"]["all_right"] >= BARS["one_shape"], summary["one_shape"]
    assert summary["two_shapes"]["shapes_and_relation_right"] >= BARS["two_shapes"], summary["two_shapes"]


def test_the_shipped_config_runs_out_of_the_box(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = config.load(ROOT / "configs" / "flow.yaml", [f"output_dir={tmp_path}", "num_images=1", "batch_size=1"])
    [path] = generate.run(cfg, progress=False)
    image = Image.open(path)
    assert "tiny-shapes-flow" in image.text["parameters"]
    assert np.asarray(image.convert("RGB")).std() > 5  # a drawn scene, not a flat or black image
