"""Start-up of scripts/generate.py, from process start to the first denoising step, and what it imports:
python scripts/bench_startup.py [--runs 5] [--config configs/txt2img.yaml] [TREE ...]

Each TREE (default: this repository) is a checkout of the project, e.g. an older commit made with `git worktree add`;
its folder is put first on PYTHONPATH and this interpreter runs its `scripts/generate.py CONFIG steps=1 num_images=1
batch_size=1`, so every tree runs on the same torch and packages. The runs of the trees are interleaved (tree A, tree
B, A, B, ...) so that a busy machine slows them alike. A run's time ends when the denoising loop's progress bar first
appears on stderr (its first step starting): loading and checking included, denoising and saving left out. One more
run of each tree under `python -X importtime` counts the pipeline modules it imported, how many of them are research
and development code (the shapes world, the trainer, the benchmark, the fixture builders: RESEARCH below), and the
seconds spent importing (importtime's own overhead included), in all and in the pipeline modules' own code. The CPU
it ran on is printed first.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.lab.bench.measure import cpu_description, describe_cpu

ROOT = Path(__file__).resolve().parents[1]
# pipeline.lab since the regrouping (commit 7a5ca67); before it, the same code under these names.
RESEARCH = ("pipeline.lab", "pipeline.shapes", "pipeline.bench", "pipeline.tiny_model", "pipeline.addons.demo",
            "pipeline.single_file.clip_vocab", "pipeline.single_file.to_ldm")


@dataclass
class Imports:
    """What one `-X importtime` run imported: the pipeline modules, the packages and research ones among them, the
    seconds all imports took and the seconds spent in the pipeline modules' own code."""

    pipeline: list[str]
    packages: list[str]
    research: list[str]
    seconds: float
    own_seconds: float


@dataclass
class Tree:
    """One checkout under measurement and its figures."""

    path: Path
    seconds: list[float] = field(default_factory=list)
    imports: Imports | None = None

    def revision(self) -> str:
        """The tree's commit, '-dirty' when it has uncommitted changes."""
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=self.path,
                                   capture_output=True, text=True)
        return described.stdout.strip() or "?"


def command(config: str, output_dir: Path, *flags: str) -> list[str]:
    """The generate.py command line: one step, one image, so that start-up is nearly all of the run."""
    return [sys.executable, *flags, "scripts/generate.py", config, "steps=1", "num_images=1", "batch_size=1",
            f"output_dir={output_dir}"]


def environment(tree: Path) -> dict[str, str]:
    """The run's environment: offline, the tree's package first on the import path."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tree)}


def first_step_seconds(tree: Path, config: str, output_dir: Path) -> float:
    """Run generate.py once: the seconds from its start until its first 'denoise' progress line."""
    started = time.perf_counter()
    process = subprocess.Popen(command(config, output_dir), cwd=tree, env=environment(tree), text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds, lines = None, []
    for line in process.stderr:  # text mode reads tqdm's carriage returns as line ends
        lines.append(line)
        if seconds is None and line.startswith("denoise"):
            seconds = time.perf_counter() - started
    if process.wait() != 0 or seconds is None:
        raise SystemExit(f"{tree}: generate.py failed or showed no denoising step:\n{''.join(lines[-20:])}")
    return seconds


def imports(tree: Path, config: str, output_dir: Path) -> Imports:
    """Run generate.py under -X importtime and read which modules it imported and how long all imports took."""
    process = subprocess.run(command(config, output_dir, "-X", "importtime"), cwd=tree, env=environment(tree),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if process.returncode != 0:
        raise SystemExit(f"{tree}: generate.py failed under -X importtime:\n{process.stderr[-3000:]}")
    rows = [line.split("|") for line in process.stderr.splitlines()
            if line.startswith("import time:") and "cumulative" not in line]
    names = [row[2].strip() for row in rows]
    top_level = [int(row[1]) for row in rows if not row[2][1:].startswith(" ")]  # nested names are indented
    ours = [name for name in names if name == "pipeline" or name.startswith("pipeline.")]
    research = [name for name in ours if name.startswith(RESEARCH)]
    packages = [name for name in ours if (tree.joinpath(*name.split(".")) / "__init__.py").is_file()]
    own = sum(int(row[0].split(":")[1]) for row in rows if row[2].strip().startswith("pipeline"))
    return Imports(ours, packages, research, sum(top_level) / 1e6, own / 1e6)


def table(trees: list[Tree]) -> str:
    """The figures as a markdown table, one row per tree."""
    rows = ["| tree | commit | first denoising step: median (min-max) | pipeline modules imported (packages) "
            "| of which R&D | all imports (importtime) | pipeline's own |", "|---|---|---|---|---|---|---|"]
    for tree in trees:
        found, times = tree.imports, tree.seconds
        rows.append(f"| {tree.path} | {tree.revision()} | {statistics.median(times):.2f} s "
                    f"({min(times):.2f}-{max(times):.2f}) | {len(found.pipeline)} ({len(found.packages)}) | "
                    f"{len(found.research)} | {found.seconds:.2f} s | {found.own_seconds:.2f} s |")
    return "\n".join(rows)


def main() -> None:
    """Measure each tree interleaved, then its imports, and print the CPU, every run and the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT], help="checkouts to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each tree")
    parser.add_argument("--config", default="configs/txt2img.yaml", help="the config, relative to each tree")
    args = parser.parse_args()
    trees = [Tree(path.resolve()) for path in args.trees]
    print(describe_cpu(cpu_description()), f"torch {torch.__version__}.", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        output_dir = Path(folder)
        for run in range(args.runs):
            for tree in trees:
                seconds = first_step_seconds(tree.path, args.config, output_dir)
                tree.seconds.append(seconds)
                print(f"run {run + 1}: {tree.path}: {seconds:.2f} s", flush=True)
        for tree in trees:
            tree.imports = imports(tree.path, args.config, output_dir)
            print(f"{tree.path}: R&D modules imported: {', '.join(tree.imports.research) or 'none'}", flush=True)
    print(table(trees))


if __name__ == "__main__":
    main()
