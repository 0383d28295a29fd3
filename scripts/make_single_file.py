"""Write a diffusers-format model as one checkpoint file in the original (A1111 / ComfyUI) layout:

    python scripts/make_single_file.py [MODEL] [OUT] [--open-clip]

(default models/tiny-shapes -> models/checkpoints/tiny-shapes.safetensors; --open-clip writes the text encoder in
SD 2.x's OpenCLIP layout). Load it back with model.path=OUT model.config=MODEL (README, Single-file checkpoints).
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.lab.fixtures.to_ldm import write_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="models/tiny-shapes")
    parser.add_argument("out", nargs="?", default="models/checkpoints/tiny-shapes.safetensors")
    parser.add_argument("--open-clip", action="store_true", help="the text encoder in SD 2.x's OpenCLIP layout")
    args = parser.parse_args()
    print(write_checkpoint(Path(args.model), Path(args.out), args.open_clip))


if __name__ == "__main__":
    main()
