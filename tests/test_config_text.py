"""Config text is data: no `${...}` is interpolated, and any prompt survives the PNG text and the saved YAML."""

import random
import zlib

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from conftest import make_config
from pipeline.run import config, generate
from pipeline.tools import latent_space as latent_tools
from pipeline.common.literal import escape

SECRET_VAR = "PIPELINE_TEST_SECRET"
SECRET = "s3cr3t-value-7f1c"

NASTY = [
    f"x ${{oc.env:{SECRET_VAR}}}",
    "costs ${price}",
    "\\${x}",
    "\\\\${x} and \\\\\\${y}",
    "back\\slash \\ \\\\ end\\",
    "it's \"quoted\" 'both'",
    "nul\x00inside",
    "emoji 🦊 and flag 🏳️‍🌈",
    "rtl \u200fשלום\u200f mark",
    "two\nlines\r\nand\ttab",
    "  leading and trailing  ",
    "key: value",
    "- item",
    "null",
    "true",
    "123",
    "~",
    "# not a comment",
    "{a: 1} [2, 3] &anchor *alias !!python/object",
    "$ {not} $${both} ${",
    "\ufeffbom \u2028 line separator \x85 next line",
    "a long prompt " * 30,
]


def saved_values(cfg) -> tuple[str, str]:
    """The prompts of a config after its YAML is saved and loaded back."""
    again = yaml.safe_load(config.to_yaml(cfg))
    return again["prompt"], again["negative_prompt"]


def test_escape_gives_back_every_text():
    rng = random.Random(0)
    for _ in range(1000):
        text = "".join(rng.choice("\\${}a:'") for _ in range(rng.randint(0, 12)))
        node = OmegaConf.create({"text": escape(text)})
        assert node.text == text and OmegaConf.to_container(node, resolve=True)["text"] == text


@pytest.mark.parametrize("prompt", NASTY, ids=range(len(NASTY)))
def test_prompt_round_trips_from_override_and_file(prompt, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    from_override = config.load(None, [f"prompt={prompt}", f"negative_prompt={prompt}"])
    assert (from_override.prompt, from_override.negative_prompt) == (prompt, prompt)
    file = tmp_path / "task.yaml"
    file.write_bytes(yaml.safe_dump({"prompt": prompt, "negative_prompt": prompt}, allow_unicode=True).encode())
    from_file = config.load(file)
    assert (from_file.prompt, from_file.negative_prompt) == (prompt, prompt)
    saved = tmp_path / "saved.yaml"
    saved.write_text(config.to_yaml(from_file), encoding="utf-8")
    assert SECRET not in saved.read_text(encoding="utf-8")
    again = config.load(saved)
    assert (again.prompt, again.negative_prompt) == (prompt, prompt)


def test_tool_sections_keep_text_too(monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    prompt = NASTY[0]
    cfg = latent_tools.load(None, [f"latents.prompt_b={prompt}", "scheduler.options.note=${oc.env:HOME}"])
    assert cfg.latents.prompt_b == prompt and cfg.scheduler.options.note == "${oc.env:HOME}"
    assert yaml.safe_load(config.to_yaml(cfg))["latents"]["prompt_b"] == prompt


def png_text_chunks(path) -> dict[str, tuple[bytes, bytes]]:
    """Each text chunk of a PNG: keyword -> (chunk type, raw text bytes after the keyword)."""
    data, chunks, at = path.read_bytes(), {}, 8
    while at < len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            key, rest = body.split(b"\0", 1)
            chunks[key.decode("latin-1")] = (kind, zlib.decompress(rest[1:]) if kind == b"zTXt" else rest)
        at += 12 + length
    return chunks


def test_nasty_prompts_survive_png_and_yaml_and_regenerate_the_same_image(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    for i in range(0, len(NASTY), 2):  # each text once as a prompt, once as a negative prompt
        prompt, negative = NASTY[i], NASTY[i + 1]
        cfg = make_config(tiny_model, tmp_path / f"first-{i}", prompt=prompt, negative_prompt=negative, steps=2,
                          guidance_scale=2.0, seed=i)
        [image] = generate.run(cfg, progress=False)
        saved = config.load(image.with_suffix(".yaml"), [f"output_dir={tmp_path / f'again-{i}'}"])
        assert (saved.prompt, saved.negative_prompt) == (prompt, negative)
        [again] = generate.run(saved, progress=False)
        assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(image)))
        shown = f"{prompt}\nNegative prompt: {negative}\nSteps: 2, ".replace("\x00", "\u2400")
        assert Image.open(image).info["parameters"].startswith(shown)
        kind, raw = png_text_chunks(image)["parameters"]
        text = raw[2:].split(b"\0", 2)[2] if kind == b"iTXt" else raw
        assert b"\0" not in text and text.decode("utf-8" if kind == b"iTXt" else "latin-1").startswith(shown)
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET.encode() not in written
