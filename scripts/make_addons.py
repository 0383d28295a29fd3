"""Make example add-ons from the shipped model: python scripts/make_addons.py [MODEL] -> models/loras/noise.safetensors
(a random LoRA, kohya layout) and models/embeddings/redcircle.safetensors (the words "red circle" as one token)."""

import argparse
from pathlib import Path

from pipeline.lab.fixtures.addon_files import make_lora, make_word_embedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default="models/tiny-shapes")
    args = parser.parse_args()
    model = Path(args.model)
    print(make_lora(model, Path("models/loras/noise.safetensors"), seed=0, kind="kohya", scale=0.3))
    print(make_word_embedding(model, "red circle", Path("models/embeddings/redcircle.safetensors")))


if __name__ == "__main__":
    main()
