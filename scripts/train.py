"""Train the tiny-shapes family: `python scripts/train.py configs/train.yaml [key=value ...]`."""

import sys

from pipeline.lab.shapes.train import main

if __name__ == "__main__":
    main(sys.argv[1:])
