"""Planning a job: lines that differ only in their texts share one check, every line is still checked (a bad one is
refused naming it, a line with another model or add-on is checked on its own), and a stopped job lists what it
finished in job.json and index.html."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from pipeline.cli import main as cli
from pipeline.models import inspect as model_inspect, precision, weights_check
from pipeline.common import interrupts
from pipeline.tools import jobs
from pipeline.lab.fixtures.addon_files import make_lora
from pipeline.common.errors import UserError
from pipeline.run.generate import check, image_config
from pipeline.tools.jobs import plan as planning
from pipeline.tools.jobs import runner as running
from pipeline.tools.jobs.lines import job_lines
from pipeline.tools.jobs.plan import line_config, plan_job

TRICKY = ["a: b", "word " * 40, "'single' and \"double\" quotes", "null", "123", "true", "${x} and \\${y}",
          "é ü 漢字", "- a dash first", "# a hash first", "two\nlines", " spaces around ", "", "[x]", "{a: 1}",
          "\ttab", "a line\u2028separator"]


def job_config(tmp_path: Path, model: Path, lines: list, extra: str = "", dtype: str = "float32"):
    """A job on the model whose prompts file holds the lines: strings as .txt, mappings as .jsonl."""
    if all(isinstance(line, str) for line in lines):
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("".join(f"{line}\n" for line in lines))
    else:
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    path = tmp_path / "job.yaml"
    path.write_text(f"model:\n  path: {model}\n  dtype: {dtype}\n  device: cpu\nsteps: 2\n"
                    f"output_dir: {tmp_path / 'out'}\nprompts_file: {prompts}\n{extra}")
    return path


def counted(monkeypatch, module, name: str) -> list:
    """Count the calls of module.name (still calling it)."""
    calls, real = [], getattr(module, name)

    def count(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, count)
    return calls


def test_prompt_only_lines_share_one_check_and_one_weights_check(tmp_path, tiny_model, monkeypatch):
    weights = counted(monkeypatch, model_inspect, "check_weights")
    checks = counted(monkeypatch, planning, "check")
    path = job_config(tmp_path, tiny_model, [f"a red circle number {i}" for i in range(2000)])
    job = plan_job(jobs.load(path), progress=False)
    assert len(weights) == 1 and len(checks) == 1
    assert len(job.names) == 2000 and job.names[-1] == "line2000-seed0"
    assert [unit.text("prompt") for unit in job.units[:2]] == ["a red circle number 0", "a red circle number 1"]


def test_lines_with_other_keys_are_each_checked_but_build_each_model_once(tmp_path, tiny_model, monkeypatch):
    """At model.dtype auto, with the CPU reported as having native bfloat16 (so the UNet's size is counted)."""
    monkeypatch.setattr(precision, "cpu_bfloat16_support", lambda: (True, "reported native for the test"))
    monkeypatch.setattr(weights_check, "_BUILT", {})
    monkeypatch.setattr(precision, "_COUNTED", {})
    weights = counted(monkeypatch, model_inspect, "check_weights")
    builds = counted(monkeypatch, weights_check, "meta_tensors")
    counts = counted(monkeypatch, precision, "count_parameters")
    lines = [{"prompt": "a red circle", "seed": seed} for seed in range(30)]
    job = plan_job(jobs.load(job_config(tmp_path, tiny_model, lines, dtype="auto")), progress=False)
    assert len(weights) == 30  # every line's weight files checked
    assert sorted(part.name for part, _ in builds) == ["text_encoder", "unet", "vae"] and len(counts) == 1
    assert job.units[0].plan.precision.name == "float32"  # a tiny UNet: too few parameters for bfloat16


def test_a_line_with_another_model_is_checked_on_its_own(tmp_path, tiny_model, no_weights, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    unet = broken / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[:100])
    lines = [{"prompt": f"a red circle number {i}"} for i in range(2000)]
    lines[1499] = {"prompt": "a red circle", "model": {"path": str(broken)}}
    path = job_config(tmp_path, tiny_model, lines)
    assert cli.run_cli(str(path), []) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"prompts.jsonl line 1500: model weight file {unet} is incomplete or damaged" in err
    assert not (tmp_path / "out").exists()


def test_lines_naming_add_ons_are_checked_with_them(tmp_path, tiny_model):
    loras, embeddings = tmp_path / "loras", tmp_path / "embeddings"
    make_lora(tiny_model, loras / "style.safetensors", seed=1)
    embeddings.mkdir()
    torch.manual_seed(0)
    save_file({"<glow>": torch.randn(32)}, embeddings / "glow.safetensors")
    lines = ["a red circle", "a red circle <lora:style:0.5>", "a glow square", "a blue square",
             "a blue square <lora:style:0.5>", "a glow circle", "a green circle"]
    path = job_config(tmp_path, tiny_model, lines, extra=f"lora_dir: {loras}\nembeddings_dir: {embeddings}\n")
    job = plan_job(jobs.load(path), progress=False)
    found = [(len(u.plan.loras), len(u.plan.embeddings), u.own) for u in job.units]
    assert found == [(0, 0, True), (1, 0, True), (0, 1, True), (0, 0, False), (1, 0, False), (0, 1, False),
                     (0, 0, False)]
    (loras / "style.safetensors").write_bytes(b"not a lora")  # now a line naming it is refused, naming the line
    (tmp_path / "prompts.txt").write_text("a red circle\n" * 500 + "a red circle <lora:style>\n")
    with pytest.raises(UserError) as refused:
        plan_job(jobs.load(path), progress=False)
    assert str(refused.value).startswith(f"prompts_file {tmp_path / 'prompts.txt'} line 501: ")


def test_a_bad_line_is_refused_naming_it_before_any_image(tmp_path, tiny_model, no_weights, capsys):
    lines = [f"a red circle number {i}" for i in range(2000)]
    lines[1233] = "a red circle <lora:style:abc>"
    path = job_config(tmp_path, tiny_model, lines)
    assert cli.run_cli(str(path), []) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err == (f"error: prompts_file {tmp_path / 'prompts.txt'} line 1234: prompt tag "
                                 "<lora:style:abc> must end in a number (its weight); got 'abc'.\n")
    lines = [{"prompt": f"a red circle number {i}"} for i in range(2000)]
    lines[776] = {"prompt": "a red circle", "steps": 0}
    assert cli.run_cli(str(job_config(tmp_path, tiny_model, lines)), []) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err == (f"error: prompts_file {tmp_path / 'prompts.jsonl'} line 777: steps must be an "
                                 "integer >= 1; got 0.\n")
    assert not (tmp_path / "out").exists()


def test_shared_checks_give_what_checking_each_line_gives(tmp_path, tiny_model):
    """Every image's name, resolved YAML (so the job's identity) and plan equal those of checking the line alone."""
    lines = [{"prompt": text} for text in TRICKY] + [{"prompt": text, "negative_prompt": text[::-1]} for text in TRICKY]
    lines += [{"prompt": "a red circle", "steps": 3}, {"prompt": "'a blue square'", "steps": 3}]
    path = job_config(tmp_path, tiny_model, lines, extra="num_images: 3\nbatch_size: 2\n")
    cfg = jobs.load(path)
    job = plan_job(cfg, progress=False)
    assert sum(not unit.own for unit in job.units) >= 2 * (len(lines) - 3)  # the shared path was taken
    digest, names, plans = hashlib.sha256(), [], {}
    for line, (where, overrides) in enumerate(job_lines(cfg), start=1):
        plan = plans[line] = check(line_config(jobs.plain(cfg), where, overrides))
        for start in range(0, 3, 2):
            batch = plan.seeds[start : start + 2]
            for seed in batch:
                names.append(f"line{line:04d}-seed{seed}")
                digest.update(f"{names[-1]}\n{image_config(plan, seed, len(batch))}\n".encode())
    assert job.names == names and job.identity == digest.hexdigest()
    for unit in job.units:
        ours, alone = job.line_plan(unit), plans[unit.line]
        assert OmegaConf.to_yaml(ours.cfg) == OmegaConf.to_yaml(alone.cfg)
        assert (ours.height, ours.width, ours.scheduler, ours.precision) == (alone.height, alone.width,
                                                                           alone.scheduler, alone.precision)
        assert (unit.text("prompt"), unit.text("negative_prompt")) == (alone.cfg.prompt, alone.cfg.negative_prompt)


def test_short_planning_shows_no_progress(tmp_path, tiny_model, capsys):
    plan_job(jobs.load(job_config(tmp_path, tiny_model, ["a red circle", "a blue square"])), progress=True)
    assert capsys.readouterr().err == ""


def test_a_stopped_job_lists_what_it_finished(tmp_path, tiny_model, monkeypatch, capsys):
    """SIGTERM (as Ctrl-C) during the third line's image: job.json and index.html list the two images finished."""
    calls, real = [], running.generate_images

    def stop_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise interrupts.Terminated()
        return real(*args, **kwargs)

    monkeypatch.setattr(running, "generate_images", stop_on_third)
    path = job_config(tmp_path, tiny_model, ["a red circle", "a blue square", "a green triangle", "a red square"])
    assert cli.run_cli(str(path), []) == interrupts.EXIT_TERMINATED
    out = tmp_path / "out"
    assert "interrupted: 2 image(s)" in capsys.readouterr().err
    manifest = json.loads((out / "job.json").read_text())
    assert manifest["done_images"] == ["line0001-seed0", "line0002-seed0"]
    assert manifest["pending_images"] == ["line0003-seed0", "line0004-seed0"]
    assert sorted(manifest["seconds"]) == ["line0001-seed0", "line0002-seed0"]
    page = (out / "index.html").read_text()
    assert "2 of 4 done" in page and 'src="line0002-seed0.png"' in page and "line0003-seed0.png" not in page
