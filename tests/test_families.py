"""Model families and the two seams they feed: the conditioning bundle and the one model call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.engine.conditioning import Conditioning
from pipeline.engine.model_call import with_task_input
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from pipeline.models.components import load_components
from pipeline.models.families import FAMILIES, family_of
from pipeline.models.inspect import inspect_model
from pipeline.models.unet_call import UNetCall
from pipeline.run import config, generate


@pytest.fixture(scope="module")
def sd2_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sd2") / "model", sd2=True)


@pytest.fixture(scope="module")
def inpaint_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-inpaint") / "model", unet_in_channels=9)


def test_a_folder_is_told_to_be_sd1_or_sd2_by_its_text_encoder(tiny_model, sd2_model):
    assert inspect_model(str(tiny_model)).family is FAMILIES["sd1"]
    assert inspect_model(str(sd2_model)).family is FAMILIES["sd2"]
    with pytest.raises(ValueError, match="no model family"):
        family_of({"unet": {}, "scheduler": {}})


def test_components_hold_the_family_parts_by_name(tiny_model):
    info = inspect_model(str(tiny_model))
    components = load_components(info, torch.device("cpu"), torch.float32)
    weighted = {part.name for part in info.family.weighted}
    assert weighted | {"tokenizer"} == set(components.parts)
    assert components.unet is components.parts["unet"] and components.text_pairs == [
        (components.parts["tokenizer"], components.parts["text_encoder"])]


def test_the_family_builds_the_bundle_for_both_halves(tiny_model):
    components = load_components(inspect_model(str(tiny_model)), torch.device("cpu"), torch.float32)
    cfg = config.load(None, [f"model.path={tiny_model}", "prompt=a red circle", "negative_prompt=blue"])
    guided = components.family.encode(components, cfg, 3, True, (64, 64))
    assert guided.guided and set(guided.cond) == {"hidden_states"} and guided.cond["hidden_states"].shape[0] == 3
    joined = guided.batch(guided=True)["hidden_states"]
    assert torch.equal(joined[:3], guided.uncond["hidden_states"]) and torch.equal(joined[3:], guided.cond["hidden_states"])
    alone = components.family.encode(components, cfg, 2, False, (64, 64))
    assert not alone.guided and alone.batch(guided=True) is alone.cond


def test_a_bundle_refuses_halves_that_name_different_tensors():
    with pytest.raises(ValueError, match="halves"):
        Conditioning({"hidden_states": torch.zeros(1, 2)}, {"text_embeds": torch.zeros(1, 2)})


def test_the_unet_call_refuses_a_name_it_cannot_take(tiny_model):
    unet = load_components(inspect_model(str(tiny_model)), torch.device("cpu"), torch.float32).unet
    x, context = torch.zeros(1, 4, 8, 8), torch.zeros(1, 77, 32)
    with pytest.raises(ValueError, match="no conditioning named control"):
        UNetCall(unet, 7.5)(x, torch.tensor(1), {"hidden_states": context, "control": context})


def test_a_wrapper_of_the_model_call_sees_the_latents_before_the_task_channels(inpaint_model, tmp_path):
    """The seam controls plug into: a wrapper around generate's model call gets the 4 latent channels of a
    9-channel inpaint run, and what it changes changes the image."""
    cfg = config.load(None, [f"model.path={inpaint_model}", "task=inpaint", f"output_dir={tmp_path}", "steps=3",
                             "image=configs/inputs/shapes-red-circle.png",
                             "mask=configs/inputs/shapes-centre-mask.png", "height=16", "width=16"])
    components = load_components(inspect_model(str(inpaint_model)), torch.device("cpu"), torch.float32)
    plain = np.asarray(generate.generate_images(components, cfg, [0], 16, 16, progress=False)[0])
    seen = []
    original = generate.model_call

    def wrapped(components, cfg, setup, ctx=None):
        inner = original(components, cfg, setup, ctx)

        def call(x, t, conditioning):
            seen.append(x.shape[1])
            return inner(x, t, conditioning) * 0.5

        return call

    generate.model_call = wrapped
    try:
        changed = np.asarray(generate.generate_images(components, cfg, [0], 16, 16, progress=False)[0])
    finally:
        generate.model_call = original
    assert seen == [4, 4] and not np.array_equal(changed, plain)  # strength 0.8 of 3 steps: 2 steps


def test_task_input_is_no_wrapper_without_a_hook():
    def model(x, t, conditioning):
        return x

    assert with_task_input(model, None) is model
