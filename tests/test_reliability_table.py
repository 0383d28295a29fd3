"""Every bad input in tests/bad_inputs/: exit code 2, one stderr line, no traceback, nothing written, in time."""

import importlib
import pkgutil
import signal
from pathlib import Path

import pytest

import bad_inputs
from bad_inputs import Case
from pipeline.cli import main as cli
from pipeline.tools.compare import runner as compare, config as compare_config
from pipeline.tools import latent_space as latent_tools
from pipeline.cli.tools import run_tool

CASES: list[Case] = [
    case
    for module in pkgutil.iter_modules(bad_inputs.__path__)
    for case in importlib.import_module(f"bad_inputs.{module.name}").CASES
]


class TookTooLong(Exception):
    pass


def run_tool_in_process(case: Case, config: Path, overrides: list[str]) -> int:
    """The tool's command-line behaviour, in this process (what scripts/*.py call)."""
    if case.tool == "generate":
        return cli.run_cli(str(config), overrides)
    if case.tool == "compare":
        return run_tool(lambda: compare.summary(compare.run_comparison(compare_config.load(config, overrides))))
    return run_tool(lambda: latent_tools.summary(latent_tools.run(case.tool, latent_tools.load(config, overrides))))


def task_file(tmp_path: Path, tiny_model: Path, tool: str) -> Path:
    """A valid config for the tool on the tiny model, writing into tmp_path/out."""
    text = f"model:\n  path: {tiny_model}\n  dtype: float32\noutput_dir: {tmp_path / 'out'}\nsteps: 2\n"
    if tool not in ("generate", "compare"):
        text += f"image: {Path(__file__).parents[1] / 'configs' / 'inputs' / 'shapes-red-circle.png'}\n"
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


def files_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.tool}-{c.name}" for c in CASES])
def test_bad_input(case, tmp_path, tiny_model, capsys):
    config = task_file(tmp_path, tiny_model, case.tool) if case.config == "task" else (
        case.config(tmp_path, tiny_model) if callable(case.config) else Path(case.config))
    overrides = case.overrides(tmp_path, tiny_model) if callable(case.overrides) else case.overrides
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "keep.txt").write_text("written before the run")
    before = files_under(tmp_path)

    def too_long(signum, frame):
        raise TookTooLong(f"{case.name} took more than {case.seconds} s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.setitimer(signal.ITIMER_REAL, case.seconds)
    try:
        code = run_tool_in_process(case, config, overrides)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert case.expected in lines[0], err
    assert files_under(tmp_path) == before, "a refused run wrote or changed files"
