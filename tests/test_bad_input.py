"""User mistakes: one sentence naming the key or path, exit code 2, no traceback, before any weights load."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from diffusers import UNet2DConditionModel
from PIL import Image

from conftest import make_config, max_pixel_difference
from pipeline.cli import main as cli
from pipeline.run import generate

ROOT = Path(__file__).resolve().parents[1]



def run_cli(config_path, overrides, capsys):
    """Run the CLI in-process; return (exit code, stderr)."""
    code = cli.run_cli(str(config_path), overrides)
    return code, capsys.readouterr().err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def task_file(tmp_path, tiny_model):
    """A valid task file for the tiny model."""
    return write(tmp_path / "task.yaml", f"model:\n  path: {tiny_model}\noutput_dir: {tmp_path / 'out'}\n")


def missing_component(tmp_path, tiny_model):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    shutil.rmtree(broken / "vae")
    return broken


def pickle_only(tmp_path, tiny_model):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    return folder


CASES = [
    # (name, overrides or a callable making them, text that must appear in the message)
    ("unknown key", ["stpes=5"], "unknown key 'stpes'"),
    ("unknown nested key", ["model.pth=x"], "unknown key 'model.pth'"),
    ("wrong type", ["steps=many"], "key 'steps'"),
    ("height not divisible", ["height=17"], "height must be a positive multiple of 2"),
    ("width not divisible", ["width=33"], "width must be a positive multiple of 2"),
    ("steps below one", ["steps=0"], "steps must be an integer >= 1"),
    ("unknown scheduler", ["scheduler.name=warp9"], "scheduler.name must be one of pndm, lms"),
    ("unknown scheduler option", ["scheduler.options.karras=true"], "scheduler.options has keys"),
    ("bad rescale", ["guidance_rescale=1.5"], "guidance_rescale must be a number in [0, 1]"),
    ("bad dtype", ["model.dtype=float8"], "model.dtype must be one of"),
    ("unknown task", ["task=video"], "task must be one of txt2img"),
    ("missing model folder", lambda tmp, model: [f"model.path={tmp / 'nope'}"], "does not exist"),
    ("missing component", lambda tmp, model: [f"model.path={missing_component(tmp, model)}"], "missing its 'vae'"),
    ("pickle weights", lambda tmp, model: [f"model.path={pickle_only(tmp, model)}"], "model.allow_pickle=true"),
    ("unwritable output", lambda tmp, model: [f"output_dir={write(tmp / 'file', 'x') / 'out'}"], "cannot be written"),
    ("override without =", ["steps"], "must have the form key=value"),
]


@pytest.mark.parametrize("name,overrides,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence(name, overrides, expected, task_file, tmp_path, tiny_model, capsys, no_weights):
    if callable(overrides):
        overrides = overrides(tmp_path, tiny_model)
    code, err = run_cli(task_file, overrides, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]
    assert lines[0].endswith(".")


def test_typo_in_a_file_names_the_file(tmp_path, tiny_model, capsys, no_weights):
    bad = write(tmp_path / "typo.yaml", f"model:\n  path: {tiny_model}\nguidance: 3\n")
    code, err = run_cli(bad, [], capsys)
    assert code == 2 and str(bad) in err and "unknown key 'guidance'" in err


def test_missing_config_file(tmp_path, capsys, no_weights):
    code, err = run_cli(tmp_path / "absent.yaml", [], capsys)
    assert code == 2 and "absent.yaml does not exist" in err


def test_nothing_written_on_bad_input(task_file, tmp_path, capsys, no_weights):
    code, _ = run_cli(task_file, ["steps=0"], capsys)
    assert code == 2 and not any((tmp_path / "out").glob("*.png"))


def test_cli_process_exit_code_and_no_traceback(task_file):
    """The real script, in its own process: exit status 2 and a single stderr line."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), str(task_file), "scheduler.name=nope"],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: scheduler.name must be one of")


def test_pickle_weights_load_when_allowed(tiny_model, tmp_path):
    """With model.allow_pickle the .bin weights load (diffusers uses torch.load weights_only=True) and match."""
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    UNet2DConditionModel.from_pretrained(tiny_model, subfolder="unet").save_pretrained(
        folder / "unet", safe_serialization=False
    )
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    images = []
    for path, allow in ((folder, "true"), (tiny_model, "false")):
        cfg = make_config(path, tmp_path / path.name, steps=2, model__allow_pickle=allow)
        [written] = generate.run(cfg, progress=False)
        images.append([Image.open(written).convert("RGB")])
    assert max_pixel_difference(*images) == 0
