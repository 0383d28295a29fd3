"""Score prompt adherence on the shapes world:
python scripts/evaluate.py CONFIG [key=value ...] [--seeds N] [--grammar | --schedulers NAME,... | --schedulers all
                                                                | --inpaint | --steps 1,2,4,8 | --control | --xl]

With --grammar: the whole caption grammar (pipeline/lab/shapes/grammar.py) instead of the 18 one-shape prompts.
With --schedulers: the whole caption grammar with each scheduler (DDIM always), and each one's shortfall against DDIM.
With --inpaint (an inpaint config): 18 centre shapes repainted as prompted; adherence inside the mask, change outside
it, and the seam across its edge.
With --control (a config with a ControlNet, configs/controlnet.yaml): held-out scenes' layout maps as controls; the
shapes against the map (IoU), colours against the prompt, a disagreeing prompt, weight 0 and start/end windows.
With --steps: the whole caption grammar at each step count, at the config's scheduler and guidance (configs/fast.yaml).
With --xl (an SDXL-format model, e.g. configs/txt2img.yaml model.path=models/tiny-shapes-xl): the caption grammar at
crop (0, 0), and how far the shape's centre moves at each crop offset against how far SDXL's crop conditioning says.
"""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse
import json

from pipeline.run import config
from pipeline.lab.shapes.adherence import evaluate, evaluate_schedulers, evaluate_steps
from pipeline.lab.shapes.control_eval import evaluate_control
from pipeline.lab.shapes.inpaint_eval import evaluate_inpaint
from pipeline.lab.shapes.xl_eval import evaluate_xl
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
    parser.add_argument("--control", action="store_true", help="score a ControlNet config on held-out layouts")
    parser.add_argument("--steps", help="comma-separated step counts: the grammar at each")
    parser.add_argument("--xl", action="store_true", help="score an SDXL-format config's crop conditioning")
    args = parser.parse_args()

    def scores() -> dict:
        cfg = config.load(args.config, args.overrides)
        if args.inpaint:
            return evaluate_inpaint(cfg, args.seeds)
        if args.control:
            return evaluate_control(cfg, seeds_per_scene=args.seeds)
        if args.xl:
            return evaluate_xl(cfg, args.seeds)
        if args.steps:
            return evaluate_steps(cfg, [int(n) for n in args.steps.split(",")], args.seeds)
        if args.schedulers is None:
            return evaluate(cfg, args.seeds, args.grammar)
        names = None if args.schedulers == "all" else args.schedulers.split(",")
        return evaluate_schedulers(cfg, names, args.seeds)

    return run_tool(lambda: [json.dumps(scores(), indent=2)])


if __name__ == "__main__":
    raise SystemExit(main())
