"""Command-line behaviour of the tool scripts: printed result lines, user errors as one line and exit code 2
(a result that became NaN or inf: exit code 3)."""

from __future__ import annotations

import sys
from typing import Callable

from pipeline.cli.main import EXIT_NON_FINITE, EXIT_USER_ERROR, setup_logging
from pipeline.common.errors import UserError
from pipeline.common.interrupts import exit_code, signals_as_interrupts
from pipeline.engine.nonfinite import NonFiniteError


def run_tool(action: Callable[[], list[str]]) -> int:
    """Run a tool and print its result lines; a UserError is 'error: ...' on stderr and exit code 2, NaN or inf 3.

    SIGTERM is handled like Ctrl-C: the files finished so far are kept, exit 143 (130 for Ctrl-C).
    """
    setup_logging()
    with signals_as_interrupts():
        try:
            lines = action()
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USER_ERROR
        except NonFiniteError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_NON_FINITE
        except KeyboardInterrupt as interrupt:
            print("interrupted: the files finished so far are kept.", file=sys.stderr)
            return exit_code(interrupt)
    print("\n".join(lines))
    return 0
