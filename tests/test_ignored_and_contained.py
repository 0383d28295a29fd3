"""Keys a run cannot use are named, not silently dropped (strength in txt2img), and prompt text cannot reach files
outside the add-on folders (embeddings_dir is listed by file name, so a path in a prompt names nothing)."""

import logging

import torch
from safetensors.torch import save_file

from conftest import make_config
from pipeline.run import generate


def warnings_of(caplog, cfg) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        generate.check(cfg)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_strength_given_to_txt2img_is_named_in_a_warning(tiny_model, tmp_path, caplog, no_weights):
    assert warnings_of(caplog, make_config(tiny_model, tmp_path, strength=0.5)) == [
        "strength 0.5 is ignored by task txt2img, which starts from pure noise; it is used by img2img, inpaint, "
        "outpaint and depth2img."]
    assert warnings_of(caplog, make_config(tiny_model, tmp_path)) == []  # the default is no choice of the user's


def test_a_path_in_a_prompt_finds_no_embedding_outside_embeddings_dir(tiny_model, tmp_path, no_weights):
    inside, outside = tmp_path / "embeddings", tmp_path / "outside"
    for folder, name in ((inside, "glow"), (outside, "spark")):
        folder.mkdir()
        save_file({"emb_params": torch.ones(1, 32)}, folder / f"{name}.safetensors")
    plan = generate.check(make_config(tiny_model, tmp_path, prompt="a ../outside/spark circle, glow",
                                      embeddings_dir=str(inside)))
    assert [e.path for e in plan.embeddings] == [inside / "glow.safetensors"]
