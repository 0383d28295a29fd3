"""The command line every one-shot benchmark script shares (bench_sdxl, bench_controlnet, bench_flow): a config file
and/or key=value overrides, the measured Markdown section printed, `--docs` appends it, `--json` keeps the result."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from pipeline.cli.tools import run_tool
from pipeline.lab.bench.results import append_docs


def bench_main(description: str, load: Callable[[str | None, list[str]], Any], run: Callable[[Any], dict],
               markdown: Callable[[dict, Any], str]) -> int:
    """Parse arguments, measure, print the Markdown section (and the JSON path), append it to the docs if named."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--docs", help="append the section to this Markdown file, e.g. docs/benchmarks.md")
    parser.add_argument("--json", help="write the full result to this JSON file")
    args = parser.parse_args()

    def action() -> list[str]:
        first = [args.config] if args.config and "=" in args.config else []  # no config file, only overrides
        cfg = load(None if first else args.config, first + args.overrides)
        result = run(cfg)
        text = markdown(result, cfg)
        if args.json:
            with open(args.json, "x") as f:
                json.dump(result, f, indent=2)
        return [text] + ([args.json] if args.json else []) + ([str(append_docs(text, args.docs))] if args.docs else [])

    return run_tool(action)
