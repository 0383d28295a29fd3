"""Score prompt adherence on the shapes world: python scripts/evaluate.py CONFIG [key=value ...] [--seeds N]."""

import argparse
import json
import sys

from pipeline import config
from pipeline.cli import EXIT_USER_ERROR, setup_logging
from pipeline.errors import UserError
from pipeline.shapes.adherence import evaluate


def main() -> int:
    """Parse arguments, evaluate, print the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seeds", type=int, default=3, help="images per prompt")
    args = parser.parse_args()
    setup_logging()
    try:
        result = evaluate(config.load(args.config, args.overrides), args.seeds)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
