"""Write CLIP's tokenizer files (configs/single_file/tokenizer/) from the merge list in the open_clip_torch wheel.

    pip download open_clip_torch==2.24.0 --no-deps -d /tmp/oc
    python scripts/make_clip_tokenizer.py /tmp/oc/open_clip_torch-2.24.0-py3-none-any.whl

The files are committed; this script says where they came from and regenerates them.
"""

import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.lab.fixtures.clip_vocab import write_clip_files  # noqa: E402

MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: make_clip_tokenizer.py OPEN_CLIP_WHEEL_OR_BPE_GZ")
    source = Path(argv[0])
    with tempfile.TemporaryDirectory() as temp:
        if source.suffix == ".whl":
            with zipfile.ZipFile(source) as wheel:
                source = Path(wheel.extract(MEMBER, temp))
        size = write_clip_files(source, ROOT / "configs" / "single_file" / "tokenizer")
    print(f"configs/single_file/tokenizer: {size} tokens")


if __name__ == "__main__":
    main(sys.argv[1:])
