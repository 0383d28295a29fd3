"""Compare schedulers x steps on one prompt and seed: python scripts/compare_schedulers.py CONFIG [key=value ...]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse

from pipeline.tools.compare import runner as compare, config as compare_config
from pipeline.cli.tools import run_tool


def main() -> int:
    """Parse arguments, run the comparison, print one line per cell and the files written."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="a YAML config, e.g. configs/compare.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys")
    args = parser.parse_args()

    def action() -> list[str]:
        cfg = compare_config.load(args.config, args.overrides)
        return compare.summary(compare.run_comparison(cfg))

    return run_tool(action)


if __name__ == "__main__":
    raise SystemExit(main())
