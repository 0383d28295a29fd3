"""Command-line behaviour shared by the scripts: user errors as one line and exit code 2, a result that became NaN
or inf as one line and exit code 3, paths on stdout."""

from __future__ import annotations

import logging
import sys

from pipeline.run import generate
from pipeline.tools import jobs
from pipeline.engine import schedulers
from pipeline.common.errors import UserError
from pipeline.common.interrupts import exit_code, signals_as_interrupts
from pipeline.tools.jobs.run import run_job
from pipeline.engine.nonfinite import NonFiniteError

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


class _PlainLines(logging.Formatter):
    """'warning: ...' for warnings, 'note: ...' for the pipeline's notes (such as the dtype auto chose)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{'warning' if record.levelno >= logging.WARNING else 'note'}: {record.getMessage()}"


def setup_logging() -> None:
    """The pipeline's notes and every warning to stderr as plain lines; the libraries' info chatter stays quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainLines())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("pipeline").setLevel(logging.INFO)


def run_cli(config_path: str | None, overrides: list[str], list_schedulers: bool = False) -> int:
    """Run one generation (or a job of many prompts) from the command line and print every written image path,
    one per line, last.

    SIGTERM is handled like Ctrl-C (exit 143 instead of 130); after a user error, the images finished before it
    are kept and listed too.
    """
    setup_logging()
    if list_schedulers:
        print(schedulers.describe())
        return 0
    if config_path is None:
        print("error: give a config file, e.g. configs/txt2img.yaml (or --list-schedulers).", file=sys.stderr)
        return EXIT_USER_ERROR
    written: list = []
    with signals_as_interrupts():
        try:
            cfg = jobs.load(config_path, overrides)
            if jobs.is_job(cfg):
                run = run_job(cfg, config_path)
            else:
                run = generate.run(jobs.plain(cfg))
            for path in run:
                written.append(path)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            _print_paths(written)
            return EXIT_USER_ERROR
        except NonFiniteError as err:  # nothing of the failing batch was saved; the batches before it are kept
            print(f"error: {err}", file=sys.stderr)
            _print_paths(written)
            return EXIT_NON_FINITE
        except KeyboardInterrupt as interrupt:
            print(f"interrupted: {len(written)} image(s) were finished and kept.", file=sys.stderr)
            _print_paths(written)
            return exit_code(interrupt)
        _print_paths(written)
    return 0


def _print_paths(paths: list) -> None:
    """The written files, one per line on stdout."""
    if paths:
        print("\n".join(str(p) for p in paths), flush=True)
