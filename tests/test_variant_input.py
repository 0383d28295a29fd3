"""Bad input to the variants: one sentence naming the key, exit code 2, before any weights load."""

import numpy as np
import pytest
from PIL import Image

from pipeline.cli import main as cli
from pipeline.lab.fixtures.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def depthless_model(tmp_path_factory):
    """A 5-channel model folder without a depth estimator."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny5") / "model", unet_in_channels=5)


@pytest.fixture
def files(tmp_path):
    picture = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "image.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8), mode="L").save(tmp_path / "mask.png")
    Image.fromarray(np.full((8, 16), 255, np.uint8), mode="L").save(tmp_path / "small-mask.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return tmp_path



def cases(files, tiny_model, depthless_model):
    image, mask = f"image={files / 'image.png'}", f"mask={files / 'mask.png'}"
    return [
        (["task=img2img"], "image must name an image file"),
        (["task=img2img", f"image={files / 'nope.png'}"], "image file"),
        (["task=img2img", f"image={files / 'broken.png'}"], "is not a readable image"),
        (["task=img2img", image, "strength=1.7"], "strength must be a number in [0, 1]; got 1.7"),
        (["task=img2img", image, "strength=-0.1"], "strength must be a number in [0, 1]"),
        (["task=img2img", image, "strength=0.1", "steps=5"], "strength x steps must leave at least one step"),
        (["task=inpaint", image], "mask must name an image file"),
        (["task=inpaint", image, f"mask={files / 'nope.png'}"], "mask file"),
        (["task=inpaint", image, f"mask={files / 'small-mask.png'}"], "mask must be the image's size 16x16; got 16x8"),
        (["task=depth2img", image], "needs a UNet with 5 input channels"),
        (["task=depth2img", image, f"model.path={depthless_model}"], "depth2img needs depth_map set"),
        (["task=depth2img", image, f"model.path={depthless_model}", f"depth_map={files / 'nope.png'}"],
         "depth_map file"),
        (["task=txt2img", f"model.path={depthless_model}"], "task 'txt2img' needs a UNet with 4 input channels"),
        (["task=img2img", image, f"model.path={depthless_model}"], "task 'img2img' needs a UNet with 4"),
        (["task=inpaint", image, mask, f"model.path={depthless_model}"], "needs a UNet with 4 or 9 input channels"),
        (["task=outpaint", image], "outpaint needs padding on at least one side"),
        (["task=outpaint", image, "outpaint.left=-8"], "outpaint.left must be a number of pixels >= 0"),
        (["task=outpaint", image, "outpaint.left=8", "height=64"], "outpaint sets the size itself (24x16)"),
        (["task=outpaint", image, "outpaint.left=3"], "with the outpaint padding is 19x16; to be used at that size"),
    ]


def test_variant_bad_input(files, tiny_model, depthless_model, capsys, no_weights):
    for overrides, expected in cases(files, tiny_model, depthless_model):
        if not any(o.startswith("model.path=") for o in overrides):
            overrides = [f"model.path={tiny_model}", *overrides]
        (files / "empty.yaml").write_text("{}\n")
        code = cli.run_cli(str(files / "empty.yaml"), [*overrides, f"output_dir={files / 'out'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, overrides
        assert len(err) == 1 and err[0].startswith("error: ") and err[0].endswith("."), err
        assert expected in err[0], (overrides, err[0])
