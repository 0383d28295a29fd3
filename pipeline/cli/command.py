"""The one error and exit-code path of every script: a user error is one line 'error: ...' and exit code 2, a result
that became NaN or inf one line and exit code 3, Ctrl-C exit code 130 and SIGTERM (handled like it) 143; what was
finished is printed on stdout, one line each, last."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from pipeline.common.errors import UserError
from pipeline.common.interrupts import exit_code, signals_as_interrupts
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


def run_command(action: Callable[[list], None], interrupted: Callable[[list], str]) -> int:
    """Run a script's action, which appends each finished result (a written file, a summary line) to the list it is
    given, and print those results last, after a failure too; `interrupted` says, after 'interrupted: ', what an
    interruption kept. Returns the exit code."""
    setup_logging()
    finished: list = []
    with signals_as_interrupts():
        try:
            action(finished)
            code = 0
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            code = EXIT_USER_ERROR
        except NonFiniteError as err:  # nothing of the failing batch was saved; what was finished before is kept
            print(f"error: {err}", file=sys.stderr)
            code = EXIT_NON_FINITE
        except KeyboardInterrupt as interrupt:
            print(f"interrupted: {interrupted(finished)}", file=sys.stderr)
            code = exit_code(interrupt)
        if finished:
            print("\n".join(str(line) for line in finished), flush=True)
    return code
