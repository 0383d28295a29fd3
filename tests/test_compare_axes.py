"""X/Y/Z comparisons over any key (compare.axes): layout, labels, tables, byte-identical cells, bad axes early."""

import csv
from pathlib import Path

import pytest

from pipeline.cli import main as cli
from pipeline.tools.compare import runner as compare
from pipeline.cli.tools import run_tool
from test_compare import load, run, tile_counts

AXES = ("compare.axes=[{key: steps, values: [2, 3]}, {key: prompt_sr, values: [red, green, blue]},"
        " {key: seed, values: [1, 9]}]")


def test_three_axes_make_one_grid_per_z_value_with_every_cell(tiny_model, tmp_path):
    result = run(load(tiny_model, tmp_path, AXES))
    assert len(result.cells) == 12 and {c.status for c in result.cells} == {"ok"}
    assert set(result.files) >= {"grid-z1", "grid-z2", "csv", "json", "config"}
    assert tile_counts(result.files["grid-z1"]) == (3, 2)
    assert compare.column_labels(result.cells) == ["steps=2", "steps=3"]
    assert [c.row_label for c in result.cells[:6:2]] == ["red", "green", "blue"]
    rows = list(csv.DictReader(result.files["csv"].open()))
    assert [(r["steps"], r["cell"]) for r in rows[:2]] == [("2", "0"), ("3", "1")] and len(rows) == 12
    first, last = result.cells[0], result.cells[-1]
    assert (first.cfg.prompt, first.cfg.seed, last.cfg.prompt, last.cfg.seed) == (
        "a red circle", 1, "a blue circle", 9)


def test_every_cell_regenerates_byte_for_byte_from_its_yaml(tiny_model, tmp_path, capsys):
    result = run(load(tiny_model, tmp_path / "grid", AXES))
    for cell in (result.cells[3], result.cells[10]):
        out = tmp_path / f"again-{cell.stem}"
        assert cli.run_cli(str(cell.image.with_suffix(".yaml")), [f"output_dir={out}"]) == 0
        [image] = out.glob("*.png")
        assert image.read_bytes() == cell.image.read_bytes()


def test_keys_changed_together_and_a_scheduler_axis(tiny_model, tmp_path):
    cfg = load(tiny_model, tmp_path, "compare.axes=[{key: [steps, guidance_scale], values: [[2, 1.0], [3, 7.5]]},"
               " {key: scheduler, values: [ddim, {name: dpmpp_2m, options: {use_karras_sigmas: true}}]}]")
    result = run(cfg)
    assert [(c.steps, c.guidance, c.entry.key) for c in result.cells] == [
        (2, 1.0, "ddim"), (3, 7.5, "ddim"), (2, 1.0, "dpmpp_2m"), (3, 7.5, "dpmpp_2m")]
    assert result.cells[2].entry.options == {"use_karras_sigmas": True}
    assert result.cells[3].row_label == "DPM++ 2M\nuse_karras_sigmas=True"
    assert compare.column_labels(result.cells) == ["steps=2\nguidance_scale=1.0", "steps=3\nguidance_scale=7.5"]


def test_each_cell_warns_in_its_own_syntax_about_both_prompts_on_its_own_device(tiny_model, tmp_path, caplog,
                                                                                monkeypatch):
    """A comparison runs on the jobs' runner: both prompts are checked in each cell's prompt_syntax (only `none` cuts
    at 77 tokens), and components load on the process's device."""
    from pipeline.tools.jobs import runner

    devices = []
    monkeypatch.setattr(runner, "process_device", lambda device: devices.append(device) or device)
    long = " ".join(["circle"] * 100)
    result = run(load(tiny_model, tmp_path, f"negative_prompt={long}", "prompt_syntax=a1111",
                      "compare.axes=[{key: prompt_syntax, values: [a1111, none]}]"))
    assert [c.status for c in result.cells] == ["ok", "ok"] and len(devices) == 1
    warned = [r.getMessage() for r in caplog.records if "longer than" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("negative_prompt is longer than"), warned


BAD = [
    ("compare.axes=[{key: stepz, values: [2]}]", "compare.axes[0] value 2: unknown key 'stepz'"),
    ("compare.axes=[{key: guidance_scale, values: [3, -1]}]", "compare cell (guidance_scale=-1): guidance_scale"),
    ("compare.axes=[{key: prompt_sr, values: [purple, red]}]", "searches for 'purple', which the prompt does not hold"),
    ("compare.axes=[{key: steps, values: [2]}, {key: seed, values: [1]}, {key: seed, values: [2]}, "
     "{key: seed, values: [3]}]", "compare.axes must be a list of 1 to 3 axes"),
    ("compare.axes=[{key: [steps, seed], values: [[2, 1], [3]]}]", "compare.axes[0].values[1] must be a list of 2"),
    ("compare.axes=[{key: height, values: [16, 17]}]", "compare cell (height=17): height"),
    ("compare.axes=[{key: steps}]", "compare.axes[0] must be a mapping with 'key' and 'values'"),
    ("compare.axes=[{key: output_dir, values: [a, b]}]", "compare.axes[0].key output_dir cannot be an axis"),
    ("compare.axes=[{key: [steps, output_dir], values: [[2, a]]}]", "compare.axes[0].key output_dir cannot be an"),
    ("compare.axes=[{key: loras.3.weight, values: [1]}]", "loras.3.weight: 3 is not an entry of that list (it has 0"),
]


@pytest.mark.parametrize("override,expected", BAD, ids=[b[0][:40] for b in BAD])
def test_a_bad_axis_is_one_sentence_before_weights_load(override, expected, tiny_model, tmp_path, capsys, no_weights):
    code = run_tool(lambda: compare.summary(run(load(tiny_model, tmp_path, override))))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert not list(Path(tmp_path).iterdir()), "a run folder was made for bad input"


def test_axes_and_the_scheduler_lists_are_not_mixed(tiny_model, tmp_path, capsys, no_weights):
    code = run_tool(lambda: compare.summary(run(load(tiny_model, tmp_path, "compare.steps=[2]",
                                                     "compare.axes=[{key: seed, values: [1]}]"))))
    assert code == 2 and "give compare.axes or compare.steps, not both" in capsys.readouterr().err


def test_two_processes_make_the_single_runs_cells(tiny_model, tmp_path):
    from conftest import launch_two_processes
    from test_compare import ROOT

    config = tmp_path / "xyz.yaml"
    config.write_text(f"model: {{path: {tiny_model}, dtype: float32, device: cpu}}\nprompt: a red circle\nsteps: 2\n"
                      "compare:\n  axes: [{key: seed, values: [1, 2, 3]}, {key: prompt_sr, values: [red, green]}]\n")
    done = launch_two_processes(ROOT / "scripts" / "compare_schedulers.py", str(config), f"output_dir={tmp_path / 'two'}",
                                cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = run(load(tiny_model, tmp_path / "one", "steps=2",
                      "compare.axes=[{key: seed, values: [1, 2, 3]}, {key: prompt_sr, values: [red, green]}]"))

    def pictures(folder):  # cell PNGs by their place in the grid (the numbers before it are free to differ)
        return {p.name.split("-", 1)[1]: p.read_bytes() for p in folder.glob("*/[0-9]*-z*.png")}

    one, two = pictures(tmp_path / "one"), pictures(tmp_path / "two")
    assert len(one) == 6 and one == two
    [folder] = (tmp_path / "two").iterdir()
    assert {p.name for p in folder.iterdir()} >= {"grid.png", "cells.csv", "cells.json", "index.html", "config.yaml"}
    assert len(list(csv.DictReader((folder / "cells.csv").open()))) == 6 and result.cells[5].status == "ok"
