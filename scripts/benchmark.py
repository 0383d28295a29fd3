"""Benchmark ours against diffusers in one run: python scripts/benchmark.py configs/bench.yaml [key=value ...]."""

import argparse
import sys

from pipeline.bench.main import load_bench, run_benchmark
from pipeline.bench.report import append_docs, markdown, write_json
from pipeline.cli import EXIT_USER_ERROR, setup_logging
from pipeline.errors import UserError


def main() -> int:
    """Parse arguments, measure, write the JSON and the docs section, print the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    setup_logging()
    try:
        bench = load_bench(args.config, args.overrides)
        result = run_benchmark(bench)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    text = markdown(result, bench)
    print(text)
    print(write_json(result, bench.output_dir))
    if bench.docs:
        print(append_docs(text, bench.docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
