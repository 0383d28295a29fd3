"""Draw the README's pictures of the ControlNet, the LCM-LoRA and the flow model from their shipped configs:
python scripts/make_family_pictures.py [FOLDER] (default docs/images); with --xl MODEL, only the SDXL-format
sibling's size and crop picture (sdxl-crops.png) from that folder (the recipe's `xl` stage's export)."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":
    quiet_start()

import argparse
from pathlib import Path

from pipeline.lab.shapes.family_pictures import PICTURES, xl_picture

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Make each picture and print where it went."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--only", choices=sorted(PICTURES), help="make just this one")
    parser.add_argument("--xl", metavar="MODEL", help="draw sdxl-crops.png from this SDXL-format folder instead")
    args = parser.parse_args()
    if args.xl:
        path = Path(args.folder) / "sdxl-crops.png"
        xl_picture(ROOT, args.xl).save(path)
        print(path)
        return
    for name, make in PICTURES.items():
        if args.only in (None, name):
            path = Path(args.folder) / name
            make(ROOT).save(path)
            print(path)


if __name__ == "__main__":
    main()
