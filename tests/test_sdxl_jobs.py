"""Jobs and X/Y/Z comparisons run on SDXL unchanged: two processes write what one writes, a refiner included."""

import subprocess
import sys
from pathlib import Path

from conftest import launch_two_processes
from sdxl_fixtures import SIZE
from test_jobs import ROOT, files, job_file
from pipeline.cli import main as cli


def pictures(folder: Path) -> dict[str, bytes]:
    """A comparison's cell images by their place in the grid."""
    return {p.name.split("-", 1)[1]: p.read_bytes() for p in folder.glob("*/[0-9]*-z*.png")}


def test_a_two_process_sdxl_job_with_a_refiner_writes_the_single_runs_files(tmp_path, sdxl_base, sdxl_refiner):
    body = (f"height: {SIZE}\nwidth: {SIZE}\nsteps: 4\nrefiner: {{path: {sdxl_refiner}, switch_at: 0.5}}\n"
            "prompts:\n  - a red circle\n  - {prompt: a green square, seed: 7, num_images: 2, original_size: [64, 64]}\n")
    path = job_file(tmp_path, sdxl_base, body)
    done = launch_two_processes(ROOT / "scripts" / "generate.py", str(path), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "out").rename(tmp_path / "two")
    assert cli.run_cli(str(path), []) == 0
    one, two = files(tmp_path / "out"), files(tmp_path / "two")
    assert len(one) == 7 and one == two  # 3 images, their YAML and the manifest
    assert b"refiner:" in one["line0002-seed8.yaml"] and b"original_size:" in one["line0002-seed8.yaml"]


def test_an_sdxl_comparison_over_the_size_conditioning_and_the_switch(tmp_path, sdxl_base, sdxl_refiner):
    config = tmp_path / "xyz.yaml"
    config.write_text(
        f"model: {{path: {sdxl_base}, dtype: float32, device: cpu}}\nprompt: a red circle\nsteps: 4\n"
        f"height: {SIZE}\nwidth: {SIZE}\nrefiner: {{path: {sdxl_refiner}}}\n"
        "compare:\n  axes: [{key: original_size, values: [[32, 32], [96, 96]]}, "
        "{key: refiner.switch_at, values: [0.5, 0.75]}]\n")
    done = launch_two_processes(ROOT / "scripts" / "compare_schedulers.py", str(config),
                                f"output_dir={tmp_path / 'two'}", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    single = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_schedulers.py"), str(config),
                             f"output_dir={tmp_path / 'one'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    one, two = pictures(tmp_path / "one"), pictures(tmp_path / "two")
    assert len(one) == 4 and one == two
    assert len(set(one.values())) == 4  # each cell differs: both axes change the image
