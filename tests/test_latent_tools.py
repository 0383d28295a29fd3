"""Latent tools: roundtrip, channels, interpolate (images, seeds, prompts), noise; bad input fails before loading."""

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_config
from pipeline.tools import latent_space as latent_tools
from pipeline.models.components import load_components
from pipeline.models.inspect import inspect_model
from pipeline.run.generate import generate_images
from pipeline.tools.latent_space.mixing import interpolate, lerp, slerp, weights
from pipeline.tools.latent_space.noise import diffuse, forward_process, timestep_for
from pipeline.tools.latent_space.roundtrip import compression, psnr
from pipeline.cli.tools import run_tool

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "configs" / "inputs"
SHIPPED = ROOT / "models" / "tiny-shapes"
PSNR_BAR = 26.0  # dB; shapes-red-circle.png measured 29.13 dB on the tiny-shapes VAE (random weights give about 9)


def load(model, output_dir, *overrides):
    """A latent-tools config for a model from key=value overrides, with the shipped example images."""
    items = [f"model.path={model}", f"output_dir={output_dir}", "model.device=cpu", "model.dtype=float32",
             f"image={INPUTS / 'shapes-red-circle.png'}", f"latents.image_b={INPUTS / 'shapes-yellow-square.png'}"]
    return latent_tools.load(None, items + list(overrides))


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_roundtrip_reports_psnr_and_compression(tiny_model, tmp_path):
    result = latent_tools.run("roundtrip", load(tiny_model, tmp_path))
    original = Image.open(INPUTS / "shapes-red-circle.png")
    assert result.numbers["compression"] == 3.0  # the tiny VAE: factor 2, 4 channels -> 2 * 2 * 3 / 4
    assert result.numbers["psnr_db"] == pytest.approx(psnr(original, Image.open(result.files["reconstruction"])))
    assert Image.open(result.files["panel"]).width > 3 * 128
    sampled = [latent_tools.run("roundtrip", load(tiny_model, tmp_path, "latents.sample=true", f"seed={s}"))
               for s in (3, 3, 4)]
    recon = [pixels(r.files["reconstruction"]) for r in sampled]
    assert np.array_equal(recon[0], recon[1]) and not np.array_equal(recon[0], recon[2])


def test_psnr_and_compression_formulas():
    image = Image.new("RGB", (512, 512), (10, 20, 30))
    assert compression(image, torch.zeros(1, 4, 64, 64)) == 48
    assert psnr(image, image) == math.inf
    off_by_one = Image.new("RGB", (512, 512), (11, 21, 31))
    assert psnr(image, off_by_one) == pytest.approx(20 * math.log10(255))


@pytest.mark.skipif(not (SHIPPED / "vae").is_dir(), reason="models/tiny-shapes is not exported yet (scripts/train.py)")
def test_roundtrip_psnr_on_the_shipped_model(tmp_path):
    result = latent_tools.run("roundtrip", load(SHIPPED, tmp_path))
    vae = json.loads((SHIPPED / "vae" / "config.json").read_text())
    side = 2 ** (len(vae["block_out_channels"]) - 1)  # each down block but the last halves the sides
    assert result.numbers["compression"] == side * side * 3 / vae["latent_channels"]
    assert result.numbers["psnr_db"] > PSNR_BAR


def test_slerp_and_lerp_endpoints_equal_the_inputs():
    a, b = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randn(1, 4, 8, 8)
    for mix in (lerp, slerp):
        assert torch.equal(mix(a, b, 0.0), a) and torch.equal(mix(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    assert middle.norm() == pytest.approx(float((a.norm() + b.norm()) / 2), rel=0.05)  # lerp would shrink it
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: falls back to lerp


def test_interpolation_frames_count_and_order():
    a, b = torch.zeros(3), torch.ones(3)
    frames = interpolate(a, b, 5, "linear")
    assert weights(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [float(f[0]) for f in frames] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(interpolate(a, b, 7, "slerp")) == 7


def test_interpolating_images_starts_and_ends_at_their_reconstructions(tiny_model, tmp_path):
    cfg = load(tiny_model, tmp_path, "latents.frames=4", "latents.method=linear")
    result = latent_tools.run("interpolate", cfg)
    frames = [pixels(result.files[f"frame_{i:02d}"]) for i in range(4)]
    assert "frame_04" not in result.files
    first = latent_tools.run("roundtrip", cfg).files["reconstruction"]
    last = latent_tools.run("roundtrip", load(tiny_model, tmp_path, f"image={INPUTS / 'shapes-yellow-square.png'}"))
    assert np.array_equal(frames[0], pixels(first)) and np.array_equal(frames[-1], pixels(last.files["reconstruction"]))
    assert not np.array_equal(frames[1], frames[0])
    with Image.open(result.files["gif"]) as gif:
        assert gif.n_frames == 4
    noised = latent_tools.run("interpolate", load(tiny_model, tmp_path, "latents.frames=4", "latents.noise_level=0.5"))
    assert not np.array_equal(pixels(noised.files["frame_00"]), frames[0])


@pytest.fixture(scope="module")
def components(tiny_model):
    info = inspect_model(str(tiny_model))
    return load_components(info, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("between", ["seeds", "prompts"])
def test_interpolating_seeds_or_prompts_ends_at_the_cores_images(between, tiny_model, tmp_path, components):
    cfg = load(tiny_model, tmp_path, f"latents.between={between}", "latents.frames=3", "steps=2", "seed=5",
               "latents.seed_b=9", "prompt=a red circle", "latents.prompt_b=a blue square")
    result = latent_tools.run("interpolate", cfg)
    frames = [pixels(result.files[f"frame_{i:02d}"]) for i in range(3)]
    ends = [("a red circle", 5), ("a red circle", 9) if between == "seeds" else ("a blue square", 5)]
    for frame, (prompt, seed) in zip((frames[0], frames[-1]), ends):
        [image] = generate_images(components, make_config(tiny_model, tmp_path, steps=2, prompt=prompt), [seed], 16, 16,
                                  progress=False)
        assert np.array_equal(frame, np.asarray(image))
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[2])


def test_channels_panel_preview_and_statistics(tiny_model, tmp_path):
    result = latent_tools.run("channels", load(tiny_model, tmp_path))
    assert len(result.numbers) == 8  # mean and std of 4 channels
    preview = Image.open(result.files["preview"])
    assert preview.mode == "RGBA" and preview.size == (128, 128)
    assert Image.open(result.files["panel"]).width > 4 * 128


def test_noise_levels_follow_the_schedule(tiny_model, tmp_path):
    result = latent_tools.run("noise", load(tiny_model, tmp_path, "latents.noise_levels=[0, 0.5, 1]"))
    shares = list(result.numbers.values())
    assert shares[0] == 1.0 and shares[0] > shares[1] > shares[2] > 0
    assert [timestep_for(level, 1000) for level in (0, 0.001, 0.5, 1)] == [None, 0, 499, 999]
    latent = torch.randn(1, 4, 8, 8)
    process = forward_process(inspect_model(str(tiny_model)).scheduler)
    assert torch.equal(diffuse(latent, torch.randn(1, 4, 8, 8), 0, process), latent)
    assert Image.open(result.files["grid"]).width > 3 * 128


def test_shipped_config_runs_on_its_own_images(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name their inputs relative to the repository root
    config = ROOT / "configs" / "latents.yaml"
    cfg = latent_tools.load(config)
    assert (ROOT / cfg.image).is_file() and (ROOT / cfg.latents.image_b).is_file()
    cfg = latent_tools.load(config, [f"model.path={tiny_model}", f"output_dir={tmp_path}", "model.dtype=float32"])
    assert latent_tools.run("roundtrip", cfg).numbers["compression"] == 3


def test_string_keys_of_the_section_keep_the_raw_text():
    cfg = latent_tools.load(None, ["latents.prompt_b=yes", "latents.image_b=123"])
    assert cfg.latents.prompt_b == "yes" and cfg.latents.image_b == "123"


def blank(tmp_path, size):
    """A plain image of the given size in the test's folder."""
    path = tmp_path / f"blank-{size[0]}x{size[1]}.png"
    Image.new("RGB", size).save(path)
    return path


BAD = [
    ("roundtrip", lambda tmp: [f"image={tmp / 'nope.png'}"], "image file"),
    ("noise", lambda tmp: [f"image={tmp / 'nope.png'}"], "does not exist"),
    ("interpolate", lambda tmp: [f"latents.image_b={tmp / 'nope.png'}"], "latents.image_b file"),
    ("channels", lambda tmp: [f"image={blank(tmp, (63, 64))}"], "is 63x64; its sides must be multiples of 2"),
    ("interpolate", lambda tmp: [f"latents.image_b={blank(tmp, (32, 32))}"], "must have one size"),
    ("interpolate", lambda tmp: ["latents.frames=1"], "latents.frames must be an integer >= 2; got 1."),
    ("interpolate", lambda tmp: ["latents.method=cubic"], "latents.method must be one of linear, slerp"),
    ("interpolate", lambda tmp: ["latents.between=colours"], "latents.between must be one of images, seeds, prompts"),
    ("interpolate", lambda tmp: ["latents.between=seeds", "latents.noise_level=0.5"], "applies to images only"),
    ("interpolate", lambda tmp: ["latents.between=prompts", "scheduler.name=warp9"], "scheduler.name must be one of"),
    ("interpolate", lambda tmp: ["latents.between=seeds", "task=img2img"], "task must be txt2img when latents.between"),
    ("noise", lambda tmp: ["latents.noise_levels=[0.5, 2]"], "latents.noise_levels[1] must be a number in [0, 1]"),
    ("roundtrip", lambda tmp: ["latents.frmaes=3"], "unknown key 'latents.frmaes'"),
]


@pytest.mark.parametrize("command,overrides,expected", BAD, ids=[f"{b[0]}-{b[2][:30]}" for b in BAD])
def test_bad_input_is_one_sentence_before_weights_load(command, overrides, expected, tiny_model, tmp_path, capsys,
                                                        no_weights):
    out = tmp_path / "out"
    def action():
        return latent_tools.summary(latent_tools.run(command, load(tiny_model, out, *overrides(tmp_path))))

    code = run_tool(action)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert expected in err
    assert not out.exists() or not list(out.iterdir()), "a run folder was made for bad input"


def test_script_reports_a_missing_image(tiny_model, tmp_path, capsys, monkeypatch, no_weights):
    script = runpy.run_path(str(ROOT / "scripts" / "latents.py"))
    config = str(ROOT / "configs" / "latents.yaml")
    argv = ["latents.py", "roundtrip", config, f"model.path={tiny_model}", f"image={tmp_path / 'gone.png'}"]
    monkeypatch.setattr("sys.argv", argv)
    assert script["main"]() == 2
    assert f"error: image file {tmp_path / 'gone.png'} does not exist." in capsys.readouterr().err


def test_the_latent_tools_read_a_checkpoint_file_as_its_folder(tmp_path):
    from pipeline.lab.fixtures.to_ldm import write_checkpoint

    file = write_checkpoint(SHIPPED, tmp_path / "tiny-shapes.safetensors")
    folder = latent_tools.run("roundtrip", load(SHIPPED, tmp_path / "a"))
    single = latent_tools.run("roundtrip", load(file, tmp_path / "b", f"model.config={SHIPPED}"))
    assert single.numbers["psnr_db"] == folder.numbers["psnr_db"]
    assert np.array_equal(pixels(single.files["reconstruction"]), pixels(folder.files["reconstruction"]))
