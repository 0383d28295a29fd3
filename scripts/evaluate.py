"""Score prompt adherence on the shapes world: python scripts/evaluate.py CONFIG [key=value ...] [--seeds N] [--grammar]

With --grammar: the whole caption grammar (pipeline/shapes/grammar.py) instead of the 18 one-shape prompts.
"""

from pipeline.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse
import json

from pipeline import config
from pipeline.shapes.adherence import evaluate
from pipeline.tool_cli import run_tool


def main() -> int:
    """Parse arguments, evaluate, print the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seeds", type=int, default=3, help="images per prompt")
    parser.add_argument("--grammar", action="store_true",
                        help="score the whole caption grammar (69 prompts, scene-level scorer) instead")
    args = parser.parse_args()
    return run_tool(lambda: [json.dumps(
        evaluate(config.load(args.config, args.overrides), args.seeds, args.grammar), indent=2)])


if __name__ == "__main__":
    raise SystemExit(main())
