"""Config text as data, input images as people have them, and messages that name the real culprit."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from bad_inputs import Case


def yaml_file(text: str, name: str = "config.yaml"):
    """A config file with `text`, after the lines that make it a valid run on the tiny model."""

    def build(tmp: Path, model: Path) -> Path:
        path = tmp / name
        path.write_text(f"model:\n  path: {model}\n  dtype: float32\noutput_dir: {tmp / 'out'}\n{text}")
        return path

    return build


def raw_file(data: bytes):
    """A config file holding exactly these bytes."""

    def build(tmp: Path, model: Path) -> Path:
        (tmp / "raw.yaml").write_bytes(data)
        return tmp / "raw.yaml"

    return build


def directory(tmp: Path, model: Path) -> Path:
    (tmp / "configs").mkdir()
    return tmp / "configs"


def fifo(tmp: Path, model: Path) -> Path:
    os.mkfifo(tmp / "pipe.yaml")
    return tmp / "pipe.yaml"


def png_chunks(width: int, height: int, idat: bytes, color_type: int = 2) -> bytes:
    """A PNG with the given header size and IDAT payload, chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def saved(name: str, array: np.ndarray, **options):
    """An input image that Pillow saves from an array, built in tmp_path."""

    def build(tmp: Path) -> Path:
        Image.fromarray(array).save(tmp / name, **options)
        return tmp / name

    return build


def raw(name: str, data: bytes):
    """An input file holding exactly these bytes."""

    def build(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return build


def folder(tmp: Path) -> Path:
    (tmp / "pictures").mkdir()
    return tmp / "pictures"


def args(task: str, *overrides: str, **files):
    """Overrides: `task=...`, the given ones, and `key=path` for each input file (latents__image_b: latents.image_b)."""

    def build(tmp: Path, model: Path) -> list[str]:
        items = [f"task={task}"] if task else []
        return items + list(overrides) + [f"{key.replace('__', '.')}={make(tmp)}" for key, make in files.items()]

    return build


GRAY = np.full((16, 16), 128, np.uint8)
FADING = np.arange(256, dtype=np.uint8).reshape(16, 16)  # an alpha channel from clear to opaque
NOISE = np.random.default_rng(0).integers(0, 256, 16 * 49, dtype=np.uint8).tobytes()  # 16 rows of 16 RGB pixels
IMAGE = saved("image.png", np.dstack([GRAY] * 3))
ODD = saved("odd.png", np.dstack([GRAY[:, :15]] * 3))
TINY = saved("dot.png", np.zeros((1, 1, 3), np.uint8))
FLOAT = saved("float.tif", np.full((16, 16), 0.5, np.float32))
WIDE = saved("wide.tif", np.full((16, 16), 70000, np.int32))
SEE_THROUGH_MASK = saved("mask.png", np.dstack([GRAY, FADING]))  # gray + alpha: LA
GARBAGE_PNG = raw("garbage.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
CUT_PNG = raw("cut.png", png_chunks(16, 16, zlib.compress(NOISE)[:300]))
HALF_PNG = raw("half.png", png_chunks(16, 16, zlib.compress(NOISE))[:400])
BOMB = raw("bomb.png", png_chunks(20000, 20000, zlib.compress(b"")))
EMPTY = raw("empty.png", b"")

CASES = [
    # 3. config text is data: `${...}` is never interpolated, wherever it is written
    Case("text for a number", ["steps=${seed}"], "key 'steps': Value '${seed}'"),
    Case("text for a switch", ["model.allow_pickle=${oc.env:HOME}"], "Value '${oc.env:HOME}' is not a valid bool"),
    Case("text for a section", ["model=${oc.env:HOME}"], "key 'model' must be a mapping; got the text '${oc.env:H"),
    Case("text for scheduler.options", ["scheduler.options=${oc.env:HOME}"], "'scheduler.options' must be a mapping"),
    Case("interpolation in a file", [], "key 'steps': Value '${seed}'", config=yaml_file("steps: ${seed}\n")),
    Case("section as text in a file", [], "'performance' must be a mapping", config=yaml_file("performance: ${x}\n")),
    Case("model.path kept as written", ["model.path=${oc.env:HOME}/m"], "folder ${oc.env:HOME}/m does not"),
    Case("scheduler.name kept as written", ["scheduler.name=${oc.env:HOME}"], "got '${oc.env:HOME}'"),
    Case("task kept as written", ["task=${task}"], "task must be one of txt2img"),
    Case("compare: steps as text", ["compare.steps=${x}"], "key 'compare.steps' must be a list", tool="compare"),
    Case("compare: schedulers as text", ["compare.schedulers=${oc.env:HOME}"], "got '${oc.env:HOME}'", tool="compare"),
    Case("latents: levels as text", ["latents.noise_levels=${x}"], "noise_levels' must be a list", tool="noise"),
    Case("latents: image kept as written", ["image=${oc.env:HOME}"], "file ${oc.env:HOME} does", tool="roundtrip"),
    # 9. a config file that is not a YAML text file is named for what it is
    Case("config is a directory", [], "is a directory, not a YAML file", config=directory),
    Case("config is a fifo", [], "is not a regular file", config=fifo),
    Case("config is a PNG", [], "is not a text YAML file (byte 0 is not UTF-8)", config=raw_file(b"\x89PNG\r\n\0")),
    Case("config holds NUL", [], "is not a text YAML file (character 9 is U+0000)", config=raw_file(b"prompt: a\0b\n")),
    Case("config is Latin-1", [], "(byte 11 is not UTF-8)", config=raw_file("prompt: café\n".encode("latin-1"))),
    Case("compare: config is a directory", [], "is a directory", tool="compare", config=directory),
    # 9. an input image the model cannot take at its own size names the image and its file
    Case("img2img: odd image", args("img2img", image=ODD), "odd.png is 15x16; to be used at that size"),
    Case("img2img: image too small", args("img2img", image=TINY), "dot.png is 1x1; to be used at that size"),
    Case("img2img: height set, width from image", args("img2img", "height=16", image=ODD), "odd.png is 15x16"),
    Case("inpaint: odd image", args("inpaint", image=ODD, mask=ODD), "odd.png is 15x16"),
    Case("outpaint: odd padding", args("outpaint", "outpaint.left=1", image=IMAGE), "outpaint padding is 17x16"),
    Case("roundtrip: odd image", args("", image=ODD), "image file ", tool="roundtrip"),
    Case("interpolate: odd second image", args("", latents__image_b=ODD), "image_b file ", tool="interpolate"),
    # 6. images as people have them: what cannot be shown faithfully is refused with a sentence
    Case("mask with transparency", args("inpaint", image=IMAGE, mask=SEE_THROUGH_MASK), "has transparent pixels"),
    Case("floating-point image", args("img2img", image=FLOAT), "has floating-point samples"),
    Case("32-bit image", args("img2img", image=WIDE), "has 32-bit samples outside 0..65535"),
    Case("image is a directory", args("img2img", image=folder), "is a directory, not an image"),
    Case("garbage after a PNG signature", args("img2img", image=GARBAGE_PNG), "is not a readable image"),
    Case("PNG with its pixel data cut", args("img2img", image=CUT_PNG), "is not a readable image"),
    Case("PNG cut in half", args("img2img", image=HALF_PNG), "is not a readable image"),
    Case("empty image file", args("img2img", image=EMPTY), "is not a readable image"),
    Case("decompression bomb", args("img2img", image=BOMB), "declares more than 67108864 pixels"),
    Case("roundtrip: floating-point image", args("", image=FLOAT), "has floating-point samples", tool="roundtrip"),
    Case("interpolate: image_b a directory", args("", latents__image_b=folder), "is a directory", tool="interpolate"),
]
