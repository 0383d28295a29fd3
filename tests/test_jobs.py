"""Jobs: many prompts in one run, named by line and seed, resumable, refused when changed; several processes."""

import json
from pathlib import Path

import pytest

from conftest import launch_two_processes
from pipeline.cli import main as cli
from pipeline.tools import jobs
from pipeline.tools.jobs.run import run_job

ROOT = Path(__file__).resolve().parents[1]


def job_file(tmp_path: Path, model: Path, body: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"model:\n  path: {model}\n  dtype: float32\n  device: cpu\nsteps: 3\n"
                    f"output_dir: {tmp_path / 'out'}\n{body}")
    return path


LIST = """prompts:
  - a red circle
  - {prompt: a green square, seed: 7, num_images: 2, guidance_scale: 5}
"""


def files(folder: Path) -> dict[str, bytes]:
    """The folder's images, their YAML and the manifest without its timings (the report holds timings too)."""
    found = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "index.html"}
    if "job.json" in found:
        manifest = json.loads(found["job.json"])
        manifest.pop("seconds")
        found["job.json"] = json.dumps(manifest).encode()
    return found


def test_a_job_writes_each_image_by_line_and_seed_with_its_yaml(tmp_path, tiny_model, capsys):
    path = job_file(tmp_path, tiny_model, LIST)
    assert cli.run_cli(str(path), []) == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["line0001-seed0.png", "line0002-seed7.png", "line0002-seed8.png"]
    assert [Path(line).name for line in capsys.readouterr().out.split()] == names
    manifest = json.loads((out / "job.json").read_text())
    assert (manifest["lines"], manifest["images"], manifest["done"]) == (2, 3, 3)
    # each image's YAML regenerates it byte for byte as a plain run
    again = tmp_path / "again"
    assert cli.run_cli(str(out / "line0002-seed8.yaml"), [f"output_dir={again}"]) == 0
    [regenerated] = again.glob("*.png")
    assert regenerated.read_bytes() == (out / "line0002-seed8.png").read_bytes()


def test_running_a_job_again_resumes_it_without_touching_what_is_done(tmp_path, tiny_model):
    path = job_file(tmp_path, tiny_model, LIST)
    cfg = jobs.load(path)
    first = list(run_job(cfg, str(path), progress=False))
    out = tmp_path / "out"
    before = files(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert list(run_job(jobs.load(path), str(path), progress=False)) == []
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    (out / "line0002-seed7.png").unlink()  # as if the first run had been stopped before this image
    (out / "line0002-seed7.yaml").unlink()
    redone = list(run_job(jobs.load(path), str(path), progress=False))
    assert [p.name for p in redone] == ["line0002-seed7.png"] and len(first) == 3
    after = files(out)
    assert {k: v for k, v in after.items() if k != "job.json"} == {k: v for k, v in before.items() if k != "job.json"}


def test_a_changed_job_in_the_same_folder_is_refused_and_a_new_folder_offered(tmp_path, tiny_model, capsys):
    path = job_file(tmp_path, tiny_model, LIST)
    assert cli.run_cli(str(path), []) == 0
    before = files(tmp_path / "out")
    capsys.readouterr()
    assert cli.run_cli(str(path), ["steps=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds another job" in err and f"{tmp_path / 'out'}-2" in err
    assert files(tmp_path / "out") == before


@pytest.mark.parametrize("name,text", [
    ("prompts.txt", "a red circle\n\n  a green square  \n"),
    ("prompts.jsonl", '{"prompt": "a red circle"}\n{"prompt": "a green square", "steps": 2}\n'),
    ("prompts.yaml", "- a red circle\n- {prompt: a green square, steps: 2}\n"),
])
def test_prompts_files_of_each_kind(name, text, tmp_path, tiny_model):
    (tmp_path / name).write_text(text)
    path = job_file(tmp_path, tiny_model, f"prompts_file: {tmp_path / name}\n")
    written = list(run_job(jobs.load(path), str(path), progress=False))
    assert [p.name for p in written] == ["line0001-seed0.png", "line0002-seed0.png"]
    second = (tmp_path / "out" / "line0002-seed0.yaml").read_text()
    assert "prompt: a green square" in second and ("steps: 2" in second) == (name != "prompts.txt")


def test_two_processes_write_the_single_runs_files(tmp_path, tiny_model):
    path = job_file(tmp_path, tiny_model, LIST + "  - {prompt: a blue triangle, seed: 3}\n")
    done = launch_two_processes(ROOT / "scripts" / "generate.py", str(path), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "out").rename(tmp_path / "two")
    assert cli.run_cli(str(path), []) == 0
    one, two = files(tmp_path / "out"), files(tmp_path / "two")
    assert len(one) == 9 and one == two  # 4 images, their YAML, and the manifest (with every image done)
    assert json.loads(two["job.json"])["done"] == 4 and (tmp_path / "two" / "index.html").is_file()
    printed = sorted(Path(line).name for line in done.stdout.split())
    assert printed == sorted(name for name in one if name.endswith(".png"))  # each image written by one process
