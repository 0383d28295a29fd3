"""Benchmark ours against diffusers in one run: python scripts/benchmark.py configs/bench.yaml [key=value ...]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse

from pipeline.lab.bench.main import load_bench, run_benchmark
from pipeline.lab.bench.results import append_docs, markdown, write_json
from pipeline.cli.tools import run_tool


def main() -> int:
    """Parse arguments, measure, write the JSON and the docs section, print the section and the paths."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    def action() -> list[str]:
        bench = load_bench(args.config, args.overrides)
        result = run_benchmark(bench)
        text = markdown(result, bench)
        lines = [text, str(write_json(result, bench.output_dir))]
        return lines + ([str(append_docs(text, bench.docs))] if bench.docs else [])

    return run_tool(action)


if __name__ == "__main__":
    raise SystemExit(main())
