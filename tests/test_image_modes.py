"""Input images as people have them: every mode comes in as the picture a viewer shows (tests/bad_inputs/textdata.py
has the refusals)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import make_config
from pipeline.run import generate
from pipeline.common.inputs import read_grayscale, read_image

GRAY16 = np.array([[0, 1000, 1001, 32896], [32895, 40000, 65534, 65535]], dtype=np.uint16)
RGB = np.array([[[255, 0, 0], [0, 128, 255], [10, 20, 30]], [[200, 100, 50], [0, 0, 0], [255, 255, 255]]], np.uint8)
ALPHA = np.array([[255, 128, 0], [64, 255, 1]], dtype=np.uint8)


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The reference composite, by hand: colour x alpha + white x (1 - alpha), rounded."""
    a = alpha[..., None] / 255.0
    return np.round(rgb * a + 255.0 * (1 - a)).astype(np.uint8)


def png16(path, samples: np.ndarray, color_type: int):
    """A 16-bit PNG written chunk by chunk (color type 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA)."""
    height, width = samples.shape[:2]
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def pixels(path, key="image"):
    return np.asarray(read_image(str(path), key))


def test_16_bit_grayscale_is_scaled_not_white(tmp_path):
    expected = np.round(GRAY16 / 257).astype(np.uint8)
    for name, samples in (("le.png", GRAY16), ("be.tif", GRAY16.astype(">u2"))):
        Image.fromarray(samples).save(tmp_path / name)
        assert np.array_equal(pixels(tmp_path / name), np.repeat(expected[..., None], 3, axis=2)), name
        assert np.array_equal(np.asarray(read_image(str(tmp_path / name), "mask", mode="L")), expected)
    Image.fromarray(GRAY16.astype(np.int32)).save(tmp_path / "i32.tif")  # mode I, 16-bit values
    assert np.array_equal(pixels(tmp_path / "i32.tif")[..., 0], expected)


def test_16_bit_depth_map_keeps_its_precision(tmp_path):
    Image.fromarray(GRAY16).save(tmp_path / "depth.png")
    depth = read_grayscale(str(tmp_path / "depth.png"), "depth_map")
    assert depth.dtype == np.float32 and np.array_equal(depth, (GRAY16 / 65535.0).astype(np.float32))
    assert depth[0, 1] < depth[0, 2]  # 1000 and 1001 differ; in 8 bits both are 4


def test_16_bit_colour_pngs(tmp_path):
    colour = RGB.astype(np.uint16) * 257 + 100  # not exact multiples of 257
    got = pixels(png16(tmp_path / "rgb16.png", colour, 2))
    assert np.abs(got.astype(int) - np.round(colour / 257)).max() <= 1  # Pillow keeps the high byte
    with_alpha = np.concatenate([colour, ALPHA[..., None].astype(np.uint16) * 257], axis=2)
    got = pixels(png16(tmp_path / "rgba16.png", with_alpha, 6))
    assert np.abs(got.astype(int) - over_white(np.round(colour / 257), ALPHA)).max() <= 1


def test_transparency_is_composited_on_white(tmp_path):
    Image.fromarray(np.concatenate([RGB, ALPHA[..., None]], axis=2)).save(tmp_path / "rgba.png")
    assert np.array_equal(pixels(tmp_path / "rgba.png"), over_white(RGB, ALPHA))
    gray = RGB[..., 0]
    Image.fromarray(np.stack([gray, ALPHA], axis=2), mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(pixels(tmp_path / "la.png"), over_white(np.repeat(gray[..., None], 3, axis=2), ALPHA))
    palette = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / "p.png", transparency=1)
    assert pixels(tmp_path / "p.png").tolist() == [[[255, 0, 0], [255, 255, 255], [0, 0, 255]]]
    Image.fromarray(RGB).save(tmp_path / "key.png", transparency=(10, 20, 30))
    expected = RGB.copy()
    expected[0, 2] = 255
    assert np.array_equal(pixels(tmp_path / "key.png"), expected)
    Image.fromarray(np.concatenate([RGB, np.full_like(ALPHA, 255)[..., None]], axis=2)).save(tmp_path / "opaque.png")
    assert np.array_equal(np.asarray(read_image(str(tmp_path / "opaque.png"), "mask", mode="L")),
                          np.asarray(Image.fromarray(RGB).convert("L")))  # an opaque RGBA mask is fine


def test_cmyk_and_bilevel(tmp_path):
    cmyk = np.array([[[0, 255, 255, 0], [0, 0, 0, 255], [0, 0, 0, 0]]], np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.tif")
    assert pixels(tmp_path / "cmyk.tif").tolist() == [[[255, 0, 0], [0, 0, 0], [255, 255, 255]]]
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "bits.png")
    assert np.asarray(read_image(str(tmp_path / "bits.png"), "mask", mode="L")).tolist() == [[255, 0]]


def test_exif_orientation_is_applied(tmp_path):
    picture = Image.fromarray(RGB)
    exif = picture.getexif()
    exif[0x0112] = 6  # stored sideways: a viewer turns it 90 degrees clockwise
    picture.save(tmp_path / "turned.png", exif=exif)
    assert np.array_equal(pixels(tmp_path / "turned.png"), np.rot90(RGB, k=-1))


def test_the_pipeline_gets_what_a_viewer_shows(tiny_model, tmp_path):
    """img2img from a 16-bit gray PNG, an RGBA PNG and a rotated PNG equals img2img from the reference RGB."""
    rng = np.random.default_rng(0)
    gray = (rng.integers(0, 256, (16, 16)) * 257).astype(np.uint16)
    alpha = rng.integers(0, 256, (8, 16)).astype(np.uint8)
    colour = rng.integers(0, 256, (8, 16, 3)).astype(np.uint8)  # stored turned: 8 wide, 16 high
    gray_ref = np.repeat((gray // 257).astype(np.uint8)[..., None], 3, axis=2)
    turned = Image.fromarray(np.rot90(colour, k=1).copy())
    exif = turned.getexif()
    exif[0x0112] = 6
    turned.save(tmp_path / "turned.png", exif=exif)
    cases = {
        "gray16": (Image.fromarray(gray), gray_ref),
        "rgba": (Image.fromarray(np.concatenate([colour, alpha[..., None]], axis=2)), over_white(colour, alpha)),
        "turned": (None, colour),
    }
    for name, (image, reference) in cases.items():
        if image is not None:
            image.save(tmp_path / f"{name}.png")
        Image.fromarray(reference).save(tmp_path / f"{name}-ref.png")

    def img2img(image, out):
        cfg = make_config(tiny_model, tmp_path / out, task="img2img", image=image, steps=2, strength=0.5)
        [path] = generate.run(cfg, progress=False)
        return np.asarray(Image.open(path))

    for name in cases:
        ours, reference = img2img(tmp_path / f"{name}.png", name), img2img(tmp_path / f"{name}-ref.png", "ref")
        assert np.array_equal(ours, reference), name


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_8_bit_files_are_unchanged(tmp_path, mode):
    data = RGB if mode == "RGB" else RGB[..., 1]
    Image.fromarray(data).save(tmp_path / "plain.png")
    got = read_image(str(tmp_path / "plain.png"), "image", mode=mode)
    assert got.mode == mode and np.array_equal(np.asarray(got), data)
