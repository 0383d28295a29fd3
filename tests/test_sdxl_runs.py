"""SDXL runs beyond parity: mistakes refused in one sentence before loading, the PNG's fields, text read with both
encoders (A1111 chunks and BREAK, compel, clip skip's numbering), float16 with a force_upcast VAE, jobs and X/Y/Z."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image

from conftest import make_config
from sdxl_fixtures import SIZE
from pipeline.cli import main as cli
from pipeline.models.components import load_components
from pipeline.models.inspect import inspect_model
from pipeline.run import config, generate
from pipeline.text.pairs import encode_pairs, pooled_output

CPU = torch.device("cpu")


def refused(cfg, capsys) -> str:
    """The one-line message of a config the CLI refuses (exit 2)."""
    path = Path(cfg.output_dir).parent / "task.yaml"
    path.write_text(config.to_yaml(cfg))
    assert cli.run_cli(str(path), []) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def edited_copy(folder: Path, tmp_path: Path, part: str, **changes) -> Path:
    """A copy of a model folder with keys of one JSON file changed."""
    copy = tmp_path / "edited"
    shutil.copytree(folder, copy)
    file = copy / part
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("settings, expected", [
    (dict(task="txt2img", model="refiner"), "is an SDXL refiner, trained for the last steps only"),
    (dict(refiner__path="sd1"), "is a Stable Diffusion 1.x model; an SDXL base is refined by an SDXL refiner"),
    (dict(refiner__path="refiner", task="inpaint"), "refiner.path works with task txt2img or img2img"),
    (dict(refiner__path="refiner", refiner__switch_at=1.5), "refiner.switch_at must be a number between 0 and 1"),
    (dict(original_size=[0, 5]), "original_size must be two whole numbers, [height, width] above 0; got [0, 5]"),
    (dict(task="depth2img"), "depth2img needs Stable Diffusion 2's depth model"),
    (dict(height=35), "height must be a positive multiple of 2 (the VAE factor); got 35"),
])
def test_sdxl_mistakes_are_one_sentence_before_loading(settings, expected, sdxl_base, sdxl_refiner, sdxl_inputs,
                                                       tiny_model, tmp_path, capsys, no_weights):
    models = {"refiner": sdxl_refiner, "sd1": tiny_model}
    settings = {k: models.get(v, v) if isinstance(v, str) else v for k, v in settings.items()}
    model = settings.pop("model", sdxl_base)
    cfg = make_config(model, tmp_path / "out", prompt="a", image=sdxl_inputs["image"], mask=sdxl_inputs["mask"],
                      **settings)
    assert expected in refused(cfg, capsys)


def test_other_families_refuse_sdxl_keys_and_refiners(tiny_model, sdxl_refiner, tmp_path, capsys, no_weights):
    err = refused(make_config(tiny_model, tmp_path / "out", prompt="a", crops_coords_top_left=[4, 4]), capsys)
    assert "crops_coords_top_left conditions SDXL models only" in err
    err = refused(make_config(tiny_model, tmp_path / "out", prompt="a", refiner__path=sdxl_refiner), capsys)
    assert "refiner.path refines an SDXL base; model.path" in err and "Stable Diffusion 1.x" in err


def test_a_wrong_family_is_one_sentence(sdxl_base, tmp_path, capsys, no_weights):
    named = edited_copy(sdxl_base, tmp_path, "model_index.json", _class_name="StableDiffusionPipeline")
    err = refused(make_config(named, tmp_path / "out", prompt="a"), capsys)
    assert "names StableDiffusionPipeline (a Stable Diffusion 1.x pipeline)" in err and "Stable Diffusion XL" in err
    shutil.rmtree(named)
    plain_unet = edited_copy(sdxl_base, tmp_path, "unet/config.json", addition_embed_type=None)
    err = refused(make_config(plain_unet, tmp_path / "out", prompt="a"), capsys)
    assert "is not a model of a family the pipeline knows" in err


def test_the_png_names_the_refiner_and_the_size_conditioning(sdxl_base, sdxl_refiner, tmp_path):
    cfg = make_config(sdxl_base, tmp_path / "out", prompt="a red circle", steps=4, height=SIZE, width=SIZE,
                      refiner__path=sdxl_refiner, refiner__switch_at=0.5, original_size=[48, 40])
    path = next(generate.run(cfg, progress=False))
    text = Image.open(path).info["parameters"]
    assert f"Refiner: {sdxl_refiner.name}, Refiner switch at: 0.5" in text
    assert "Original size: 48x40" in text and "Crop top-left" not in text and f"Size: {SIZE}x{SIZE}" in text
    from sd_parsers import ParserManager

    metadata = ParserManager().parse(path).metadata  # an A1111 reader finds the fields
    assert metadata["Refiner"] == sdxl_refiner.name and str(metadata["Refiner switch at"]) == "0.5"


def test_a1111_chunks_and_break_read_both_encoders(sdxl_base):
    components = load_components(inspect_model(str(sdxl_base)), CPU, torch.float32)
    pairs = components.text_pairs
    (one,), (pooled,) = encode_pairs(pairs, ["ab cd"], CPU, "a1111", 1, ["prompt"])
    (two,), (pooled_two,) = encode_pairs(pairs, ["ab BREAK cd"], CPU, "a1111", 1, ["prompt"])
    assert one.shape == (1, 77, 64) and two.shape == (1, 154, 64) and pooled.shape == (1, 32)
    assert torch.equal(pooled_two, pooled_output(*pairs[1], "ab", "a1111", CPU))  # A1111 pools the first chunk
    (long,), _ = encode_pairs(pairs, ["a " * 100], CPU, "a1111", 1, ["prompt"])
    assert long.shape == (1, 154, 64)
    (compel,), (compel_pooled,) = encode_pairs(pairs, ["a (red)1.5 circle"], CPU, "compel", 1, ["prompt"])
    (plain,), _ = encode_pairs(pairs, ["a red circle"], CPU, "compel", 1, ["prompt"])
    assert compel.shape == (1, 77, 64) and compel_pooled.shape == (1, 32) and not torch.equal(compel, plain)


def test_clip_skip_counts_from_sdxls_penultimate_layer(sdxl_base):
    """Ours 1 = diffusers' default (the penultimate layer), ours n = diffusers' clip_skip n - 1 (docs/sdxl.md)."""
    components = load_components(inspect_model(str(sdxl_base)), CPU, torch.float32)
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_base, add_watermarker=False)
    for ours, theirs in ((1, None), (2, 1), (3, 2)):
        (hidden,), _ = encode_pairs(components.text_pairs, ["a red circle"], CPU, "none", ours, ["prompt"])
        reference = pipe.encode_prompt("a red circle", do_classifier_free_guidance=False, clip_skip=theirs)[0]
        assert torch.equal(hidden, reference), (ours, theirs)


def test_float16_keeps_a_force_upcast_vae_in_float32(sdxl_base, tmp_path):
    info = inspect_model(str(sdxl_base))
    assert info.vae.get("force_upcast")
    components = load_components(info, CPU, torch.float16)
    assert components.unet.dtype == torch.float16 and components.vae.dtype == torch.float32
    cfg = make_config(sdxl_base, tmp_path / "out", prompt="a red circle", steps=2, height=SIZE, width=SIZE,
                      model__dtype="float16")
    image = Image.open(next(generate.run(cfg, progress=False)))
    assert image.size == (SIZE, SIZE)


def test_the_shipped_sdxl_config_runs_with_a_refiner(sdxl_base, sdxl_refiner, tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    cfg = config.load(root / "configs" / "sdxl-1.0.yaml")
    assert cfg.model.path == "stabilityai/stable-diffusion-xl-base-1.0" and cfg.height == 1024
    cfg = config.load(root / "configs" / "sdxl-1.0.yaml", [f"model.path={sdxl_base}", f"refiner.path={sdxl_refiner}",
                                                      f"output_dir={tmp_path}", "steps=4", f"height={SIZE}",
                                                      f"width={SIZE}", "model.device=cpu"])
    [path] = generate.run(cfg, progress=False)
    assert Image.open(path).size == (SIZE, SIZE)


def test_an_sdxl_hub_id_loads_from_the_hub_cache_offline(sdxl_base, tmp_path):
    """model.path as users write it for SDXL, read from a hub cache laid out as huggingface_hub lays it out."""
    repo = tmp_path / "cache" / "models--stabilityai--stable-diffusion-xl-base-1.0"
    shutil.copytree(sdxl_base, repo / "snapshots" / "0000000000000000000000000000000000000001")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0000000000000000000000000000000000000001")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    released = str(root / "configs" / "sdxl-1.0.yaml")
    done = subprocess.run([sys.executable, str(root / "scripts" / "generate.py"), released,
                           f"output_dir={tmp_path / 'out'}", "steps=2", f"height={SIZE}", f"width={SIZE}",
                           "model.device=cpu"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [path] = (tmp_path / "out").glob("*.png")
    assert "Model: stable-diffusion-xl-base-1.0" in Image.open(path).info["parameters"]


def test_sdxl_outpaints_with_both_unets(sdxl_base, sdxl_inpaint, sdxl_inputs, tmp_path):
    for model in (sdxl_base, sdxl_inpaint):
        cfg = make_config(model, tmp_path / model.name, task="outpaint", prompt="a red circle", steps=3,
                          image=sdxl_inputs["image"], outpaint__left=8, outpaint__top=4, strength=1.0)
        image = Image.open(next(generate.run(cfg, progress=False)))
        assert image.size == (SIZE + 8, SIZE + 4)


def test_interpolating_sdxl_prompts_of_different_lengths_ends_at_their_images(sdxl_base, tmp_path):
    """Every tensor of the bundle (hidden states, pooled, time ids) is mixed; a 1-chunk prompt is padded to the
    2-chunk one's length as A1111 pads them (zeros for the empty negative prompt's zeros), so the last frame is the
    2-chunk prompt's own image."""
    from pipeline.tools import latent_space

    long_b = "a blue square " + "on white " * 40
    items = [f"model.path={sdxl_base}", f"output_dir={tmp_path}", "model.device=cpu", "model.dtype=float32",
             "latents.between=prompts", "latents.frames=3", "steps=2", "seed=5", "prompt=a red circle",
             f"latents.prompt_b={long_b}", f"height={SIZE}", f"width={SIZE}"]
    result = latent_space.run("interpolate", latent_space.load(None, items))
    frames = [np.asarray(Image.open(result.files[f"frame_{i:02d}"]).convert("RGB")) for i in range(3)]
    components = load_components(inspect_model(str(sdxl_base)), CPU, torch.float32)
    cfg = make_config(sdxl_base, tmp_path, steps=2, prompt=long_b)
    [image] = generate.generate_images(components, cfg, [5], SIZE, SIZE, progress=False)
    assert np.array_equal(frames[-1], np.asarray(image))
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[2])


def test_the_speed_options_wrap_the_sdxl_call(sdxl_base, tmp_path):
    """DeepCache and token merging see SDXL's added conditioning through the one model call: each changes the image
    (they approximate; DeepCache's cached deep half is a small part of this tiny UNet, so by little), while attention
    slicing and channels-last leave it within rounding."""
    def image(name, **perf):
        options = {f"performance__{k}": v for k, v in perf.items()}
        cfg = make_config(sdxl_base, tmp_path / name, prompt="a red circle", steps=8, height=SIZE, width=SIZE,
                          **options)
        return np.asarray(Image.open(next(generate.run(cfg, progress=False)))).astype(int)

    plain = image("plain")
    assert np.abs(image("deepcache", deepcache_interval=2) - plain).max() > 0
    assert np.abs(image("tome", token_merging=0.5) - plain).max() > 2
    assert np.abs(image("sliced", attention_slicing=True, channels_last=True) - plain).max() <= 1
