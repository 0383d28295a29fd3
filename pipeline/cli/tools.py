"""Command-line behaviour of the tool scripts: the result lines printed once the tool is done, errors and exit codes
as for generating (pipeline/cli/command.py)."""

from __future__ import annotations

from typing import Callable

from pipeline.cli.command import run_command


def run_tool(action: Callable[[], list[str]]) -> int:
    """Run a tool and print its result lines; a UserError is 'error: ...' on stderr and exit code 2, NaN or inf 3.

    SIGTERM is handled like Ctrl-C: the files finished so far are kept, exit 143 (130 for Ctrl-C).
    """
    return run_command(lambda finished: finished.extend(action()),
                       lambda finished: "the files finished so far are kept.")
