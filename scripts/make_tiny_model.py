"""Build a tiny random Stable Diffusion folder: python scripts/make_tiny_model.py FOLDER."""

import argparse

from pipeline.lab.fixtures.tiny_model import build_tiny_model


def main() -> None:
    """Parse the target folder and build the model there."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_tiny_model(args.folder, seed=args.seed))


if __name__ == "__main__":
    main()
