"""Outputs: A1111 parameters in the PNG, resolved config beside it, numbered names that never overwrite."""

import logging

import numpy as np
from PIL import Image

from conftest import make_config
from pipeline.run import config, generate


def run(cfg):
    return list(generate.run(cfg, progress=False))


def test_png_carries_a1111_parameters(tiny_model, tmp_path):
    cfg = make_config(tiny_model, tmp_path, prompt="a red circle", negative_prompt="blue", steps=3, seed=7,
                      scheduler__name="DPM++ 2M Karras", guidance_scale=5.0)
    [path] = run(cfg)
    text = Image.open(path).info["parameters"]
    prompt, negative, fields = text.split("\n")
    assert prompt == "a red circle"
    assert negative == "Negative prompt: blue"
    assert fields.startswith("Steps: 3, Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 7, Size: 16x16, ")


def test_saved_config_reproduces_the_image(tiny_model, tmp_path):
    cfg = make_config(tiny_model, tmp_path / "a", prompt="a red circle", steps=3, seed=4, num_images=2,
                      scheduler__name="euler_a")
    first, second = run(cfg)
    saved = config.load(second.with_suffix(".yaml"), [f"output_dir={tmp_path / 'b'}"])
    assert saved.seed == 5 and saved.num_images == 1 and saved.height == 16
    [again] = run(saved)
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(second)))


def test_existing_files_are_never_overwritten(tiny_model, tmp_path):
    (tmp_path / "00001-0.png").write_bytes(b"precious")
    (tmp_path / "00003-x.yaml").write_text("also precious")
    cfg = make_config(tiny_model, tmp_path, steps=2, seed=0, num_images=2)
    paths = run(cfg)
    assert [p.name for p in paths] == ["00004-0.png", "00005-1.png"]
    assert (tmp_path / "00001-0.png").read_bytes() == b"precious"
    assert (tmp_path / "00003-x.yaml").read_text() == "also precious"
    assert not list(tmp_path.glob(".tmp-*")), "temp files were left behind"


def test_interrupted_run_keeps_finished_batches(tiny_model, tmp_path, monkeypatch):
    cfg = make_config(tiny_model, tmp_path, steps=2, num_images=3, batch_size=1)
    calls = []
    real = generate.generate_images

    def interrupt_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "generate_images", interrupt_on_second_batch)
    written = []
    try:
        for path in generate.run(cfg, progress=False):
            written.append(path)
    except KeyboardInterrupt:
        pass
    assert [p.name for p in written] == ["00001-0.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00001-0.png", "00001-0.yaml"]


def test_long_prompt_warns_with_dropped_words(tiny_model, tmp_path, caplog):
    prompt = "a red circle " * 10 + "zebra"
    cfg = make_config(tiny_model, tmp_path, prompt=prompt, steps=1, prompt_syntax="none")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        run(cfg)
    [message] = [r.getMessage() for r in caplog.records if r.name == "pipeline"]
    assert "longer than 77 tokens" in message and message.rstrip().endswith("zebra")


def test_long_prompt_is_kept_whole_by_default(tiny_model, tmp_path, caplog, capfd):
    cfg = make_config(tiny_model, tmp_path, prompt="a red circle " * 10 + "zebra", steps=1)
    with caplog.at_level(logging.WARNING):
        run(cfg)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "longer than" not in capfd.readouterr().err


def test_default_size_comes_from_the_model(tiny_model, tmp_path):
    [path] = run(make_config(tiny_model, tmp_path, steps=1))
    assert Image.open(path).size == (16, 16)
    [path] = run(make_config(tiny_model, tmp_path, steps=1, height=8, width=24))
    assert Image.open(path).size == (24, 8)
