"""Draw the example input images the variant configs name: python scripts/make_examples.py [FOLDER]."""

import argparse

from pipeline.lab.shapes.examples import write_examples


def main() -> None:
    """Parse the folder and write the examples there."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default="configs/inputs")
    for path in write_examples(parser.parse_args().folder):
        print(path)


if __name__ == "__main__":
    main()
