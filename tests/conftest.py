"""Shared fixtures: tiny random Stable Diffusion folders saved to disk and loaded through the real path."""

import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from pipeline.run import config
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from sdxl_fixtures import sdxl_base, sdxl_inpaint, sdxl_inputs, sdxl_refiner  # noqa: F401 (session fixtures, built once)

torch.set_num_threads(1)  # the tiny models gain nothing from threads, and lose badly when cores are shared


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random txt2img model folder (16x16 images, 8x8 latents)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def reference_pipe(tiny_model):
    """diffusers' StableDiffusionPipeline on the same folder: the parity oracle."""
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.original_scheduler_config = dict(pipe.scheduler.config)
    return pipe


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if a run gets as far as loading any weights (bad input must be refused before)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    for cls in (UNet2DConditionModel, AutoencoderKL, CLIPTextModel):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    for cls in (UNet2DConditionModel, AutoencoderKL):
        monkeypatch.setattr(cls, "from_single_file", refuse)


def make_config(model, output_dir, **overrides):
    """A run config for the tiny model from keyword overrides (dotted keys as 'scheduler__name')."""
    items = [f"model.path={model}", f"output_dir={output_dir}", "model.device=cpu", "model.dtype=float32"]
    items += [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    return config.load(None, items)


def as_uint8(images):
    """PIL images or a float array in [0, 1] -> uint8 arrays, rounded as diffusers rounds."""
    if isinstance(images, np.ndarray):
        return (images * 255).round().astype(np.uint8)
    return np.stack([np.asarray(im) for im in images])


def max_pixel_difference(ours, theirs) -> int:
    """The largest per-pixel difference between two uint8 image stacks."""
    return int(np.abs(as_uint8(ours).astype(int) - as_uint8(theirs).astype(int)).max())


def generators(seed, count):
    """The reference's generators: one CPU generator per image, seeded seed + i."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(count)]


def launch_two_processes(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`accelerate launch` of a script on 2 CPU processes (gloo), on a free port, offline, one thread each."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(script), *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:  # a failure shows what the processes said, not only the launcher's own traceback
        done.stderr = _process_errors(done.stderr)
    return done


def _process_errors(stderr: str) -> str:
    """A failed launch's stderr without progress bars and warnings, the launcher's traceback cut to its exit codes."""
    launcher = max(stderr.rfind("Traceback", 0, stderr.find("accelerate/commands/launch.py")), 0)
    said, told = stderr[:launcher], stderr[launcher:]
    lines = [line for line in said.replace("\r", "\n").splitlines()
             if line.strip() and "it/s]" not in line and "/s, " not in line and "torchvision" not in line]
    codes = [line.strip() for line in told.splitlines() if "exitcode" in line or "rank" in line]
    return "\n".join(lines[-25:] + ["launcher:"] + codes)
