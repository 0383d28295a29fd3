"""Every task config in configs/ loads, names inputs that exist, and runs end to end (on a tiny model here)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.run import config, generate
from pipeline.lab.shapes.examples import write_examples
from pipeline.lab.fixtures.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["txt2img", "img2img", "inpaint", "outpaint", "depth2img"]


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny5") / "model", unet_in_channels=5)


@pytest.mark.parametrize("task", TASKS)
def test_task_config_runs(task, tiny_model, depth_model, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name their inputs relative to the repository root
    cfg = config.load(ROOT / "configs" / f"{task}.yaml")
    assert cfg.task == task and cfg.prompt
    for key in ("image", "mask", "depth_map"):
        if cfg[key]:
            assert (ROOT / cfg[key]).is_file(), f"{task}.yaml names a missing {key}: {cfg[key]}"
    model = depth_model if task == "depth2img" else tiny_model
    cfg = config.load(ROOT / "configs" / f"{task}.yaml",
                      [f"model.path={model}", f"output_dir={tmp_path}", "steps=2", "num_images=1"])
    [path] = generate.run(cfg, progress=False)
    expected = (64, 64) if task != "txt2img" else (16, 16)
    assert Image.open(path).size == expected


def test_example_inputs_are_what_the_script_draws(tmp_path):
    """configs/inputs/ holds exactly what scripts/make_examples.py draws, so the inputs cannot drift."""
    drawn = write_examples(tmp_path)
    assert {p.name for p in drawn} == {p.name for p in (ROOT / "configs" / "inputs").iterdir()}
    for path in drawn:
        shipped = Image.open(ROOT / "configs" / "inputs" / path.name)
        drawn = Image.open(path)
        assert shipped.mode == drawn.mode and np.array_equal(np.asarray(shipped), np.asarray(drawn)), path.name


@pytest.mark.parametrize("overrides", [[], ["prompts=[]", "prompts_file=configs/prompts.jsonl"]])
def test_the_example_job_runs(overrides, tiny_model, tmp_path, monkeypatch):
    from pipeline.tools import jobs
    from pipeline.tools.jobs.run import run_job

    monkeypatch.chdir(ROOT)
    cfg = jobs.load(ROOT / "configs" / "job.yaml", overrides + [f"model.path={tiny_model}", f"output_dir={tmp_path}",
                                                               "steps=2"])
    written = list(run_job(cfg, "configs/job.yaml", progress=False))
    assert len(written) == 5 if not overrides else len(written) == 4
    assert (tmp_path / "job.json").is_file() and (tmp_path / "index.html").is_file()


def test_the_example_xyz_comparison_is_valid(tiny_model, tmp_path, monkeypatch):
    from pipeline.tools.compare import runner as compare, config as compare_config

    monkeypatch.chdir(ROOT)
    cfg = compare_config.load(ROOT / "configs" / "xyz.yaml", [f"model.path={tiny_model}", f"output_dir={tmp_path}"])
    plan, cells = compare.plan_cells(cfg)
    assert len(cells) == 18 and {c.z for c in cells} == {0, 1} and cells[-1].cfg.prompt.startswith("a large yellow")
