"""SD3.5 medium's guided step at its real size (random weights), ours vs diffusers on the same modules, and FLUX.1-dev's
per-block cost and memory: python scripts/bench_flow.py [config.yaml] [key=value ...] [--docs docs/benchmarks.md]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse
import json

from pipeline.cli.tools import run_tool
from pipeline.lab.bench.flow import load_flow_bench, run_flow_bench
from pipeline.lab.bench.flow_report import markdown
from pipeline.lab.bench.results import append_docs


def main() -> int:
    """Parse arguments, measure, print the Markdown section (and the JSON path), append it to the docs if named."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--docs", help="append the section to this Markdown file, e.g. docs/benchmarks.md")
    parser.add_argument("--json", help="write the full result to this JSON file")
    args = parser.parse_args()

    def action() -> list[str]:
        first = [args.config] if args.config and "=" in args.config else []  # no config file, only overrides
        cfg = load_flow_bench(None if first else args.config, first + args.overrides)
        result = run_flow_bench(cfg)
        text = markdown(result, cfg)
        if args.json:
            with open(args.json, "x") as f:
                json.dump(result, f, indent=2)
        return [text] + ([args.json] if args.json else []) + ([str(append_docs(text, args.docs))] if args.docs else [])

    return run_tool(action)


if __name__ == "__main__":
    raise SystemExit(main())
