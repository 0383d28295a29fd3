"""Faults that are not bad input: concurrent writers, SIGTERM and Ctrl-C, a full disk; and what a negative seed means."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

import test_reliability_table as table
from bad_inputs.limits import CASES
from conftest import make_config
from pipeline.cli import main as cli
from pipeline.run import config, generate, outputs
from pipeline.common import interrupts
from pipeline.common.errors import UserError
from pipeline.tools.run_folder import new_run_folder, save_text

ROOT = Path(__file__).resolve().parents[1]
ENV = {"HF_HUB_OFFLINE": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
       "OMP_NUM_THREADS": "1"}


def leftovers(folder: Path) -> list[str]:
    """Temp files and number reservations a writer should have removed."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def pairs_are_complete(folder: Path) -> bool:
    """Every PNG has its YAML and every YAML its PNG."""
    pngs = {p.stem for p in folder.glob("*.png")}
    return pngs == {p.stem for p in folder.glob("*.yaml")}


WRITER = """
import sys
from pathlib import Path
from PIL import Image
from pipeline.run.outputs import save_image
folder, stem = Path(sys.argv[1]), sys.argv[2]
image = Image.new("RGB", (8, 8))
for i in range(int(sys.argv[3])):
    save_image(image, folder, f"{stem}{i}", "parameters", "seed: 0\\n")
"""


def test_two_processes_never_share_an_image_number(tmp_path):
    saves = 150
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), stem, str(saves)], env=ENV)
               for stem in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    numbers = [p.name.split("-")[0] for p in tmp_path.glob("*.png")]
    assert len(numbers) == 2 * saves and len(set(numbers)) == len(numbers), "two images got one number"
    assert sorted(int(n) for n in numbers) == list(range(1, 2 * saves + 1))
    assert pairs_are_complete(tmp_path) and leftovers(tmp_path) == []


def test_a_reserved_number_is_skipped_by_images_and_run_folders(tmp_path):
    (tmp_path / "00001-0.png").write_bytes(b"kept")
    with outputs.reserved_number(tmp_path) as number:
        assert number == 2
        path = outputs.save_image(Image.new("RGB", (8, 8)), tmp_path, "7", "p", "seed: 7\n")
        folder = new_run_folder(tmp_path, "compare")
    assert (path.name, folder.name) == ("00003-7.png", "00004-compare")
    assert leftovers(tmp_path) == []


def signal_after_first_link(monkeypatch) -> None:
    """Send this process SIGTERM right after the first file of a save is linked into place."""
    real_link, calls = os.link, []

    def link_then_signal(src, dst):
        real_link(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(outputs.os, "link", link_then_signal)


def test_interrupt_while_placing_files_leaves_both(tmp_path, monkeypatch):
    """A signal between the YAML and the PNG link waits until both are placed (signals_as_interrupts is on)."""
    signal_after_first_link(monkeypatch)
    with interrupts.signals_as_interrupts(), pytest.raises(interrupts.Terminated):
        outputs.save_image(Image.new("RGB", (8, 8)), tmp_path, "1", "p", "seed: 1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00001-1.png", "00001-1.yaml"]


def test_sigterm_during_a_save_still_lists_its_image(tiny_model, tmp_path, monkeypatch, capsys):
    signal_after_first_link(monkeypatch)
    task = table.task_file(tmp_path, tiny_model, "generate")
    code = cli.run_cli(str(task), ["steps=1", "num_images=3"])
    out, err = capsys.readouterr()
    assert code == interrupts.EXIT_TERMINATED and "interrupted: 1 image(s)" in err
    [line] = out.split()
    assert Path(line).is_file() and Path(line).with_suffix(".yaml").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(line).name, Path(line).with_suffix(".yaml").name]


def first_png(folder: Path, process: subprocess.Popen, limit: float = 120) -> None:
    """Wait until the running process has saved an image."""
    end = time.monotonic() + limit
    while not list(folder.glob("*.png")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "no image appeared"
        time.sleep(0.05)


def test_sigterm_keeps_and_prints_finished_images(tiny_model, tmp_path):
    task = table.task_file(tmp_path, tiny_model, "generate")
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "generate.py"), str(task), "steps=1",
                                "num_images=1000"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_png(out, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "interrupted:" in stderr
    printed = [Path(line) for line in stdout.split()]
    assert printed and sorted(printed) == sorted(out.glob("*.png"))
    assert pairs_are_complete(out) and leftovers(out) == []


def handles_sigterm(process: subprocess.Popen, limit: float = 30) -> None:
    """Wait until the process catches SIGTERM (Linux: the SigCgt mask in /proc), or half a second elsewhere."""
    status = Path(f"/proc/{process.pid}/status")
    if not status.exists():
        time.sleep(0.5)
        return
    end = time.monotonic() + limit
    while time.monotonic() < end:
        caught = next((line.split()[1] for line in status.read_text().splitlines() if line.startswith("SigCgt")), "0")
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.01)
    raise AssertionError("the script never installed its SIGTERM handler")


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_start_up_prints_no_traceback(tiny_model, tmp_path, signum, code):
    task = table.task_file(tmp_path, tiny_model, "generate")
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "generate.py"), str(task)], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    handles_sigterm(process)  # quiet_start has run; the imports of torch and diffusers take seconds more
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code and "Traceback" not in stderr, stderr
    assert "interrupted while starting" in stderr
    assert stdout == "" and not (tmp_path / "out").exists()


def test_full_disk_is_one_sentence_and_keeps_the_finished_images(tiny_model, tmp_path, monkeypatch, capsys):
    real_save, saved = Image.Image.save, []

    def save_until_full(image, target, *args, **kwargs):
        saved.append(target)
        if len(saved) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(image, target, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    task = table.task_file(tmp_path, tiny_model, "generate")
    code = cli.run_cli(str(task), ["steps=1", "num_images=5"])
    out, err = capsys.readouterr()
    out_dir = tmp_path / "out"
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 2 and "Traceback" not in err and errors == [
        f"error: output_dir {out_dir} could not be written because the disk is full (No space left on device); "
        f"the files finished before it are kept."]
    kept = [Path(line) for line in out.split()]
    assert [p.name for p in kept] == ["00001-0.png", "00002-1.png"] and all(p.is_file() for p in kept)
    assert pairs_are_complete(out_dir) and leftovers(out_dir) == []


def test_a_tool_file_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(self, text, **kwargs):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(UserError, match=r"config.yaml could not be written because the disk is full \(Disk quota"):
        save_text("a: 1\n", tmp_path, "config.yaml")
    assert list(tmp_path.iterdir()) == []


def test_negative_seed_is_random_and_recorded(tiny_model, tmp_path, caplog):
    cfg = make_config(tiny_model, tmp_path, steps=1, num_images=2, seed=-1)
    assert 0 <= cfg.seed < 2**32
    assert f"this run uses seed {cfg.seed}" in caplog.text
    first, second = generate.run(cfg, progress=False)
    assert first.name == f"00001-{cfg.seed}.png" and second.name == f"00002-{cfg.seed + 1}.png"
    assert f"Seed: {cfg.seed + 1}," in Image.open(second).info["parameters"]
    assert yaml.safe_load(second.with_suffix(".yaml").read_text())["seed"] == cfg.seed + 1


def test_ordinary_yaml_anchors_still_work(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("prompt: &p a red circle\nnegative_prompt: *p\nscheduler:\n  options: &o {steps_offset: 1}\n")
    cfg = config.load(path)
    assert cfg.negative_prompt == "a red circle" and cfg.scheduler.options.steps_offset == 1


def test_every_limit_case_is_refused_before_weights_load(tiny_model, tmp_path_factory, no_weights, capsys):
    for case in CASES:
        tmp = tmp_path_factory.mktemp("case")
        path = table.task_file(tmp, tiny_model, case.tool) if case.config == "task" else case.config(tmp, tiny_model)
        overrides = case.overrides(tmp, tiny_model) if callable(case.overrides) else case.overrides
        assert table.run_tool_in_process(case, path, overrides) == 2, case.name
        assert case.expected in capsys.readouterr().err, case.name


class _Payload:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_is_not_run_even_with_allow_pickle(tiny_model, tmp_path, capsys):
    """model.allow_pickle loads .bin weights with torch.load(weights_only=True): a code payload is refused, not run."""
    import pickle
    import shutil

    from pipeline.cli import main as cli

    folder = tmp_path / "evil"
    shutil.copytree(tiny_model, folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    with open(folder / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"conv_in.weight": _Payload(marker)}, f)
    code = cli.run_cli(str(ROOT / "configs" / "txt2img.yaml"),
                       [f"model.path={folder}", "model.allow_pickle=true", f"output_dir={tmp_path / 'out'}", "steps=1"])
    err = capsys.readouterr().err
    assert not marker.exists(), "the pickle payload ran"
    assert code == 2 and not list(tmp_path.rglob("*.png"))
    [line] = [line for line in err.strip().splitlines() if line.startswith("error: ")]  # diffusers adds its own lines
    assert line.startswith("error: model.path component") and "weights_only=True" in line and "Traceback" not in err
