"""Score prompt adherence on the shapes world:
python scripts/evaluate.py CONFIG [key=value ...] [--seeds N] [--grammar | --schedulers NAME,... | --schedulers all
                                                                | --inpaint]

With --grammar: the whole caption grammar (pipeline/lab/shapes/grammar.py) instead of the 18 one-shape prompts.
With --schedulers: the whole caption grammar with each scheduler (DDIM always), and each one's shortfall against DDIM.
With --inpaint (an inpaint config): 18 centre shapes repainted as prompted; adherence inside the mask, change outside
it, and the seam across its edge.
"""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse
import json

from pipeline.run import config
from pipeline.engine.schedulers import SCHEDULERS, resolve
from pipeline.lab.shapes.adherence import evaluate, evaluate_schedulers
from pipeline.lab.shapes.inpaint_eval import evaluate_inpaint
from pipeline.cli.tools import run_tool


def main() -> int:
    """Parse arguments, evaluate, print the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seeds", type=int, default=3, help="images per prompt")
    parser.add_argument("--grammar", action="store_true",
                        help="score the whole caption grammar (69 prompts, scene-level scorer) instead")
    parser.add_argument("--schedulers", help="comma-separated scheduler names, or 'all' for every registered one")
    parser.add_argument("--inpaint", action="store_true", help="score an inpaint config on repainted centre shapes")
    args = parser.parse_args()

    def scores() -> dict:
        cfg = config.load(args.config, args.overrides)
        if args.inpaint:
            return evaluate_inpaint(cfg, args.seeds)
        if args.schedulers is None:
            return evaluate(cfg, args.seeds, args.grammar)
        names = list(SCHEDULERS) if args.schedulers == "all" else [resolve(n) for n in args.schedulers.split(",")]
        return evaluate_schedulers(cfg, names, args.seeds)

    return run_tool(lambda: [json.dumps(scores(), indent=2)])


if __name__ == "__main__":
    raise SystemExit(main())
