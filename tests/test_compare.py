"""Scheduler comparisons: grid and tables match the config, cells reproduce and fail alone, bad input fails early."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from diffusers import EulerDiscreteScheduler
from PIL import Image

from pipeline.tools.compare import runner as compare, config as compare_config
from pipeline.engine import schedulers
from pipeline.lab.shapes.scorer import spec_for_prompt
from pipeline.common.errors import UserError
from pipeline.cli.tools import run_tool

ROOT = Path(__file__).resolve().parents[1]


def load(model, output_dir, *overrides):
    """A comparison config for the tiny model from key=value overrides."""
    items = [f"model.path={model}", f"output_dir={output_dir}", "model.device=cpu", "model.dtype=float32",
             "prompt=a red circle"]
    return compare_config.load(None, items + list(overrides))


def run(cfg):
    return compare.run_comparison(cfg, progress=False)


def long_runs(line: np.ndarray, minimum: int) -> list[tuple[int, int]]:
    """(start, length) of each run of True at least `minimum` long."""
    runs, start = [], None
    for i, value in enumerate([*line, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= minimum:
                runs.append((start, i - start))
            start = None
    return runs


def tile_counts(path: Path) -> tuple[int, int]:
    """Rows and columns of image tiles in a grid picture: long non-white runs through the first tile."""
    inked = (np.asarray(Image.open(path).convert("RGB")) != 255).any(axis=-1)
    y = next(y for y in range(inked.shape[0]) if long_runs(inked[y], 100))
    x, width = long_runs(inked[y], 100)[0]
    mid_y = y + width // 2  # tiles are square
    return len(long_runs(inked[:, x + width // 2], 100)), len(long_runs(inked[mid_y], 100))


def test_grid_and_tables_match_the_config(tiny_model, tmp_path):
    cfg = load(tiny_model, tmp_path, "compare.schedulers=[ddim, 'DPM++ 2M Karras']", "compare.steps=[1,2]",
               "compare.guidance_scales=[1,4]")
    result = run(cfg)
    assert [c.entry.label for c in result.cells[::4]] == ["DDIM", "DPM++ 2M Karras"]
    labels = ["1 steps\ncfg 1", "1 steps\ncfg 4", "2 steps\ncfg 1", "2 steps\ncfg 4"]
    assert compare.column_labels(result.cells) == labels
    assert tile_counts(result.files["grid"]) == (2, 4)
    with open(result.files["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.cells) == 8
    assert [(r["scheduler"], r["steps"], r["guidance"]) for r in rows[:4]] == [
        ("ddim", "1", "1.0"), ("ddim", "1", "4.0"), ("ddim", "2", "1.0"), ("ddim", "2", "4.0")]
    assert {r["status"] for r in rows} == {"ok"}
    assert all(Path(r["image"]).is_file() and float(r["seconds_per_unet_call"]) > 0 for r in rows)
    assert [r["unet_calls"] for r in rows[:4]] == ["1", "1", "2", "2"]
    table = json.loads(result.files["json"].read_text())
    assert (table["prompt"], table["height"], len(table["cells"])) == ("a red circle", 16, 8)
    assert table["cells"][5]["options"] == {} and table["cells"][5]["label"] == "DPM++ 2M Karras"


def test_same_cell_gives_the_same_image_and_runs_never_overwrite(tiny_model, tmp_path):
    cfg = load(tiny_model, tmp_path, "compare.schedulers=[euler_a, euler_a]", "compare.steps=[2]")
    first, second = run(cfg), run(cfg)
    assert first.folder != second.folder and first.folder.is_dir()
    pictures = [np.asarray(Image.open(c.image)) for r in (first, second) for c in r.cells]
    assert all(np.array_equal(pictures[0], p) for p in pictures[1:])


class BrokenEuler(EulerDiscreteScheduler):
    def step(self, *args, **kwargs):
        raise RuntimeError("this scheduler is broken on purpose")


def test_a_failing_scheduler_leaves_the_other_cells_done(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(schedulers.SCHEDULERS, "euler", schedulers.SchedulerSpec(BrokenEuler, "Euler"))
    cfg = load(tiny_model, tmp_path, "compare.steps=[1,2]",
               "compare.schedulers=[ddim, euler, {name: lms, options: {beta_schedule: nope}}, unipc]")
    result = run(cfg)
    status = {(c.entry.key, c.steps): (c.status, c.error) for c in result.cells}
    assert status[("euler", 2)] == ("error", "RuntimeError: this scheduler is broken on purpose")
    assert status[("lms", 1)][0] == "error" and "nope" in status[("lms", 1)][1]
    assert [status[(k, s)][0] for k in ("ddim", "unipc") for s in (1, 2)] == ["ok"] * 4
    rows = list(csv.DictReader(open(result.files["csv"])))
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "error", "error", "error", "ok", "ok"]
    assert all(r["image"] == "" for r in rows if r["status"] == "error")
    assert tile_counts(result.files["grid"]) == (4, 2)  # failed cells are grey tiles


def test_an_interrupted_comparison_writes_the_cells_it_finished(tiny_model, tmp_path, monkeypatch, capsys):
    from pipeline.common import interrupts
    from pipeline.tools.jobs import runner

    calls, real = [], runner.generate_images

    def stop_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise interrupts.Terminated()
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "generate_images", stop_on_third)
    cfg = load(tiny_model, tmp_path, "compare.schedulers=[ddim, euler]", "compare.steps=[1, 2]")
    assert run_tool(lambda: compare.summary(run(cfg))) == interrupts.EXIT_TERMINATED
    assert "interrupted: the files finished so far are kept." in capsys.readouterr().err
    [folder] = tmp_path.iterdir()
    rows = list(csv.DictReader(open(folder / "cells.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok", "not run", "not run"] and (folder / "grid.png").is_file()


def test_all_means_every_registered_scheduler(tmp_path):
    cfg = compare_config.load(None, ["compare.schedulers=all"])
    assert [e.key for e in compare_config.scheduler_entries(cfg)] == list(schedulers.serving(schedulers.NOISE))


def test_null_lists_mean_the_runs_own_settings(tiny_model, tmp_path):
    cfg = load(tiny_model, tmp_path, "scheduler.name=Euler a", "steps=3", "guidance_scale=2")
    _, cells = compare.plan_cells(cfg)
    assert [(c.entry.key, c.steps, c.guidance) for c in cells] == [("euler_a", 3, 2.0)]


def test_scoring_prompts_get_pixel_scores(tiny_model, tmp_path):
    spec = spec_for_prompt("a large red circle in the centre, blue background")
    assert (spec.colour, spec.shape, spec.background) == ("red", "circle", "blue")
    assert spec_for_prompt("a red circle") is None
    cfg = load(tiny_model, tmp_path, "prompt=a large red circle in the centre, blue background",
               "compare.schedulers=[ddim]", "compare.steps=[1]")
    [row] = json.loads(run(cfg).files["json"].read_text())["cells"]
    assert isinstance(row["score_colour"], bool) and 0 <= row["colour_share"] <= 1


def test_the_shapes_world_is_an_installed_scorer_and_others_can_join(tiny_model, tmp_path, monkeypatch):
    from importlib.metadata import entry_points

    from pipeline.lab.shapes.scorer import SCORER
    from pipeline.tools import scoring

    assert [p.value for p in entry_points(group=scoring.GROUP) if p.name == "shapes"] == [
        "pipeline.lab.shapes.scorer:SCORER"]
    assert SCORER in scoring.scorers() and scoring.image_scores(Image.new("RGB", (16, 16)), "a photo of a cat") == {}
    width = scoring.Scorer(("width",), lambda image, prompt: {"width": image.width})
    monkeypatch.setitem(scoring.REGISTERED, "width", width)
    result = run(load(tiny_model, tmp_path, "compare.schedulers=[ddim]", "compare.steps=[1]"))
    [row] = list(csv.DictReader(open(result.files["csv"])))
    assert row["width"] == "16" and row["adherence"] != ""
    assert "<th>width</th>" in result.files["report"].read_text()


def test_shipped_config_runs(tiny_model, tmp_path):
    config = ROOT / "configs" / "compare.yaml"
    cfg = compare_config.load(config)
    assert len(compare_config.scheduler_entries(cfg)) >= 5 and spec_for_prompt(cfg.prompt) is not None
    cfg = compare_config.load(config, [f"model.path={tiny_model}", f"output_dir={tmp_path}", "model.dtype=float32",
                                       "compare.steps=[1]"])
    assert {c.status for c in run(cfg).cells} == {"ok"}


BAD = [
    ("compare.schedulers=[ddim, warp9]", "compare.schedulers[1]: name must be one of pndm, lms"),
    ("compare.schedulers=[{name: ddim, options: {karras: true}}]",
     "compare.schedulers[0]: options has keys DDIMScheduler does not take: karras"),
    ("compare.schedulers=[{nam: ddim}]", "compare.schedulers[0] must be a name or a mapping"),
    ("compare.schedulers=ddim", "compare.schedulers must be 'all', a non-empty list"),
    ("compare.steps=[5, 0]", "compare.steps[1] must be an integer from 1 to 1000; got 0."),
    ("compare.steps=[]", "compare.steps must be a non-empty list or null"),
    ("compare.guidance_scales=[-1]", "compare.guidance_scales[0] must be a number in [0, 100]; got -1"),
    ("compare.stpes=[5]", "unknown key 'compare.stpes'"),
    ("num_images=2", "num_images must be 1"),
]


@pytest.mark.parametrize("override,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_sentence_before_weights_load(override, expected, tiny_model, tmp_path, capsys, no_weights):
    code = run_tool(lambda: compare.summary(run(load(tiny_model, tmp_path, override))))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert expected in err
    assert not list(tmp_path.iterdir()), "a run folder was made for bad input"


def test_missing_model_fails_before_any_work(tmp_path, no_weights):
    with pytest.raises(UserError, match="does not exist"):
        compare.plan_cells(load(tmp_path / "nope", tmp_path / "out"))
