"""Command-line generation (scripts/generate.py): one run or a job of many prompts, every written image path on
stdout; errors and exit codes as for every script (pipeline/cli/command.py)."""

from __future__ import annotations

from pipeline.cli.command import EXIT_NON_FINITE, EXIT_USER_ERROR, run_command
from pipeline.common.errors import UserError
from pipeline.engine import schedulers
from pipeline.run import generate
from pipeline.tools import jobs
from pipeline.tools.jobs.run import run_job

__all__ = ["EXIT_NON_FINITE", "EXIT_USER_ERROR", "run_cli"]  # the exit codes, for callers of run_cli


def run_cli(config_path: str | None, overrides: list[str], list_schedulers: bool = False) -> int:
    """Run one generation (or a job of many prompts) from the command line and print every written image path,
    one per line, last.

    SIGTERM is handled like Ctrl-C (exit 143 instead of 130); after a user error, the images finished before it
    are kept and listed too.
    """

    def action(written: list) -> None:
        if list_schedulers:
            print(schedulers.describe())
            return
        if config_path is None:
            raise UserError("give a config file, e.g. configs/txt2img.yaml (or --list-schedulers).")
        cfg = jobs.load(config_path, overrides)
        run = run_job(cfg, config_path) if jobs.is_job(cfg) else generate.run(jobs.plain(cfg))
        for path in run:
            written.append(path)

    return run_command(action, lambda written: f"{len(written)} image(s) were finished and kept.")
