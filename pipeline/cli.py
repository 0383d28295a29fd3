"""Command-line behaviour shared by the scripts: user errors as one line and exit code 2, paths on stdout."""

from __future__ import annotations

import logging
import sys

from . import config, generate, schedulers
from .errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def setup_logging() -> None:
    """Warnings from the pipeline to stderr as plain lines; quiet the libraries' info chatter."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)


def run_cli(config_path: str | None, overrides: list[str], list_schedulers: bool = False) -> int:
    """Run one generation from the command line and print every written image path, one per line, last."""
    setup_logging()
    if list_schedulers:
        print(schedulers.describe())
        return 0
    if config_path is None:
        print("error: give a config file, e.g. configs/txt2img.yaml (or --list-schedulers).", file=sys.stderr)
        return EXIT_USER_ERROR
    written = []
    try:
        cfg = config.load(config_path, overrides)
        for path in generate.run(cfg):
            written.append(path)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: {len(written)} image(s) were finished and kept.", file=sys.stderr)
        print("\n".join(str(p) for p in written))
        return EXIT_INTERRUPTED
    print("\n".join(str(p) for p in written))
    return 0
