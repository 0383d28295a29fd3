"""Time one UNet call per mode against the GEMM rate, and bfloat16 vs float32 by UNet width:
python scripts/bench_unet.py configs/bench-unet.yaml [key=value ...]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse

from pipeline.lab.bench.results import append_docs
from pipeline.lab.bench.unet_calls import load_unet_calls, markdown, run_unet_calls
from pipeline.cli.tools import run_tool


def main() -> int:
    """Parse arguments, measure, print the Markdown section and append it to the docs file if one is named."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--docs", help="append the section to this Markdown file, e.g. docs/benchmarks.md")
    args = parser.parse_args()

    def action() -> list[str]:
        cfg = load_unet_calls(args.config, args.overrides)
        text = markdown(run_unet_calls(cfg), cfg)
        return [text] + ([str(append_docs(text, args.docs))] if args.docs else [])

    return run_tool(action)


if __name__ == "__main__":
    raise SystemExit(main())
