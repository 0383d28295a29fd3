"""Draw the README's pictures of the ControlNet and the LCM-LoRA from their shipped configs:
python scripts/make_family_pictures.py [FOLDER] (default docs/images)."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":
    quiet_start()

import argparse
from pathlib import Path

from pipeline.lab.shapes.family_pictures import PICTURES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Make each picture and print where it went."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--only", choices=sorted(PICTURES), help="make just this one")
    args = parser.parse_args()
    for name, make in PICTURES.items():
        if args.only in (None, name):
            path = Path(args.folder) / name
            make(ROOT).save(path)
            print(path)


if __name__ == "__main__":
    main()
