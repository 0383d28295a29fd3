"""Signals on the command line: SIGTERM is handled like Ctrl-C, start-up is quiet, and saves are not cut in half.

Cheap to import (no torch), so a script can call quiet_start() before its heavy imports.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so both take the interrupted path."""


_state = {"held": 0, "pending": 0, "stopping": False}


def _raise_for(signum: int) -> None:
    """The exception a signal stands for."""
    _state["stopping"] = True
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handler(signum: int, frame) -> None:
    """Raise at once, or at the end of held(); signals after the first are ignored while its clean-up runs."""
    if _state["stopping"]:
        return
    if _state["held"]:
        _state["pending"] = _state["pending"] or signum
        return
    _raise_for(signum)


@contextmanager
def held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM to the end of the outermost held() block (only while signals_as_interrupts is on).

    A save places its image and its YAML, and hands its path on, before an interrupt is raised.
    """
    _state["held"] += 1
    try:
        yield
    finally:
        _state["held"] -= 1
        if not _state["held"] and _state["pending"]:
            signum, _state["pending"] = _state["pending"], 0
            _raise_for(signum)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While a command runs: SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated (deferred by held())."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.update(held=0, pending=0, stopping=False)
    previous = {signum: signal.signal(signum, _handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


def _stop_quietly(signum: int, frame) -> None:
    """During start-up nothing is written yet: leave at once, with a line instead of a traceback."""
    sys.stderr.write("interrupted while starting; nothing was written.\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def quiet_start() -> None:
    """Call first in a script: Ctrl-C or SIGTERM during the imports exits without a traceback (130 or 143)."""
    for signum in SIGNALS:
        signal.signal(signum, _stop_quietly)
