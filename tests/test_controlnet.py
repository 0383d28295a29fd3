"""ControlNet runs equal diffusers' ControlNet pipelines (txt2img, img2img, inpaint, SDXL, several ControlNets, guess
mode, a start/end window) on tiny folders with perturbed zero convolutions, within 1/255 per pixel, for three
schedulers; mistakes are one sentence before loading; the PNG names each ControlNet as sd-webui-controlnet does."""

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionXLControlNetPipeline,
)
from omegaconf import OmegaConf
from PIL import Image

from conftest import as_uint8, generators, make_config, max_pixel_difference
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_controlnet import build_tiny_controlnet, write_controlnet_checkpoint
from pipeline.run import generate

TOLERANCE = 1  # out of 255, per pixel
CHANGED = 8  # the least pixel difference that shows a control (or its setting) changes the image
SCHEDULERS = ["ddim", "euler_a", "dpmpp_2m_karras"]
SEED, COUNT, STEPS, PROMPT = 3, 2, 4, "a red circle"


@pytest.fixture(scope="module")
def nets(tiny_model, sdxl_base, tmp_path_factory):
    """Two ControlNets for the SD 1.x tiny model and one for the tiny SDXL base."""
    folder = tmp_path_factory.mktemp("controlnets")
    return {"sd1": build_tiny_controlnet(folder / "sd1_a", tiny_model, seed=0),
            "sd1_b": build_tiny_controlnet(folder / "sd1_b", tiny_model, seed=1),
            "sdxl": build_tiny_controlnet(folder / "sdxl", sdxl_base, seed=2)}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Control maps (a square, a bar; 24x24, resized to the run as diffusers resizes), a 16x16 picture and mask."""
    folder = tmp_path_factory.mktemp("control_inputs")
    square, bar = np.zeros((24, 24, 3), np.uint8), np.zeros((24, 24, 3), np.uint8)
    square[6:18, 5:15] = 255
    bar[2:22, 16:20] = [255, 128, 0]
    y, x = np.mgrid[0:16, 0:16]
    picture = np.stack([x * 15, y * 15, 255 - x * 15], axis=-1).astype(np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[2:14, 8:15] = 255
    paths = {name: folder / f"{name}.png" for name in ("square", "bar", "image", "mask")}
    for name, array in (("square", square), ("bar", bar), ("image", picture)):
        Image.fromarray(array).save(paths[name])
    Image.fromarray(mask, mode="L").save(paths["mask"])
    return paths


def unit(path, image, **settings) -> dict:
    """One controlnets entry."""
    return {"path": str(path), "image": str(image), **settings}


def ours(model, tmp_path, name, units, **settings) -> list[Image.Image]:
    """Our run of COUNT images with the given controlnets entries."""
    settings = {"scheduler__name": name, "prompt": PROMPT, "steps": STEPS, "seed": SEED, "num_images": COUNT,
                **settings}
    cfg = make_config(model, tmp_path / f"out{len(list(tmp_path.iterdir()))}", **settings)
    cfg = OmegaConf.merge(cfg, {"controlnets": units})
    return [Image.open(p).convert("RGB") for p in generate.run(cfg, progress=False)]


_pipes = {}


def reference_pipe(cls, model, nets, **kwargs):
    """One diffusers ControlNet pipeline per class, model and ControlNets, its scheduler config kept aside."""
    key = (cls, str(model), tuple(str(n) for n in nets))
    if key not in _pipes:
        loaded = [ControlNetModel.from_pretrained(n) for n in nets]
        controlnet = loaded[0] if len(loaded) == 1 else loaded
        pipe = cls.from_pretrained(model, controlnet=controlnet, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(pipe.scheduler.config)
        _pipes[key] = pipe
    return _pipes[key]


def theirs(pipe, name, seed=SEED, count=COUNT, **kwargs) -> np.ndarray:
    """The reference call: the scheduler built as ours, one generator per image seeded seed + i, the conditioning
    scale 1 unless given (diffusers' img2img and inpaint ControlNet pipelines default to 0.8 and 0.5)."""
    kwargs.setdefault("controlnet_conditioning_scale", 1.0)
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, [seed + i for i in range(count)])
    kwargs.setdefault("guidance_scale", 7.5)
    return pipe(PROMPT, num_inference_steps=STEPS, num_images_per_prompt=count, generator=generators(seed, count),
                output_type="np", **kwargs).images


def assert_changed(mine, without) -> None:
    """The control (or the setting under test) changes the image: a parity on it proves something."""
    assert max_pixel_difference(mine, without) > CHANGED


def assert_parity(mine, reference) -> None:
    """Non-trivial, distinct reference images, and ours within TOLERANCE of them."""
    stack = as_uint8(reference).astype(int)
    assert stack.std() > 2 and np.abs(stack[0] - stack[1]).max() > 2, "reference images are trivial"
    assert max_pixel_difference(mine, reference) <= TOLERANCE


@pytest.mark.parametrize("name", SCHEDULERS)
def test_txt2img(name, tiny_model, nets, pictures, tmp_path):
    mine = ours(tiny_model, tmp_path, name, [unit(nets["sd1"], pictures["square"])])
    assert_changed(mine, ours(tiny_model, tmp_path, name, []))
    pipe = reference_pipe(StableDiffusionControlNetPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    assert_parity(mine, theirs(pipe, name, image=Image.open(pictures["square"]), height=16, width=16))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_img2img(name, tiny_model, nets, pictures, tmp_path):
    settings = dict(task="img2img", image=pictures["image"], strength=0.7)
    mine = ours(tiny_model, tmp_path, name, [unit(nets["sd1"], pictures["square"])], **settings)
    assert_changed(mine, ours(tiny_model, tmp_path, name, [], **settings))
    pipe = reference_pipe(StableDiffusionControlNetImg2ImgPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    reference = theirs(pipe, name, image=Image.open(pictures["image"]), control_image=Image.open(pictures["square"]),
                       strength=0.7, height=16, width=16)
    assert_parity(mine, reference)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_inpaint(name, tiny_model, nets, pictures, tmp_path):
    """diffusers' inpaint encodes the image with generator[0] only: our image i equals its run of seed + i alone."""
    settings = dict(task="inpaint", image=pictures["image"], mask=pictures["mask"], strength=0.7)
    mine = ours(tiny_model, tmp_path, name, [unit(nets["sd1"], pictures["square"])], **settings)
    assert_changed(mine, ours(tiny_model, tmp_path, name, [], **settings))
    pipe = reference_pipe(StableDiffusionControlNetInpaintPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    inputs = dict(image=Image.open(pictures["image"]), mask_image=Image.open(pictures["mask"]),
                  control_image=Image.open(pictures["square"]), strength=0.7, height=16, width=16)
    reference = np.concatenate([theirs(pipe, name, seed=SEED + i, count=1, **inputs) for i in range(COUNT)])
    assert_parity(mine, reference)


def test_guess_mode_without_guidance(tiny_model, nets, pictures, tmp_path):
    """guidance_scale 1 runs no unconditional half: guess mode then reads the whole batch, as diffusers does."""
    units = [unit(nets["sd1"], pictures["square"], guess_mode=True)]
    mine = ours(tiny_model, tmp_path, "ddim", units, guidance_scale=1.0)
    assert_changed(mine, ours(tiny_model, tmp_path, "ddim", [], guidance_scale=1.0))
    pipe = reference_pipe(StableDiffusionControlNetPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    reference = theirs(pipe, "ddim", image=Image.open(pictures["square"]), height=16, width=16, guess_mode=True,
                       guidance_scale=1.0)
    assert_parity(mine, reference)


def make_inpaint_condition(image: Image.Image, mask: Image.Image) -> torch.Tensor:
    """diffusers' ControlNet inpaint example: the picture in [0, 1] with masked pixels -1."""
    pixels = np.array(image.convert("RGB")).astype(np.float32) / 255.0
    pixels[np.array(mask.convert("L")).astype(np.float32) / 255.0 > 0.5] = -1.0
    return torch.from_numpy(pixels[None].transpose(0, 3, 1, 2))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_inpaint_controlnet_reads_the_masked_picture(name, tiny_model, nets, pictures, tmp_path):
    settings = dict(task="inpaint", image=pictures["image"], mask=pictures["mask"], strength=1.0)
    mine = ours(tiny_model, tmp_path, name, [unit(nets["sd1"], "", preprocessor="inpaint")], **settings)
    assert_changed(mine, ours(tiny_model, tmp_path, name, [], **settings))
    pipe = reference_pipe(StableDiffusionControlNetInpaintPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    image, mask = Image.open(pictures["image"]), Image.open(pictures["mask"])
    inputs = dict(image=image, mask_image=mask, control_image=make_inpaint_condition(image, mask), strength=1.0,
                  height=16, width=16)
    reference = np.concatenate([theirs(pipe, name, seed=SEED + i, count=1, **inputs) for i in range(COUNT)])
    assert_parity(mine, reference)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sdxl(name, sdxl_base, nets, pictures, tmp_path):
    size = dict(height=32, width=32)
    mine = ours(sdxl_base, tmp_path, name, [unit(nets["sdxl"], pictures["square"])], **size)
    assert_changed(mine, ours(sdxl_base, tmp_path, name, [], **size))
    pipe = reference_pipe(StableDiffusionXLControlNetPipeline, sdxl_base, [nets["sdxl"]], add_watermarker=False)
    assert_parity(mine, theirs(pipe, name, image=Image.open(pictures["square"]), **size))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_several_controlnets(name, tiny_model, nets, pictures, tmp_path):
    units = [unit(nets["sd1"], pictures["square"], weight=0.8), unit(nets["sd1_b"], pictures["bar"], weight=1.2)]
    mine = ours(tiny_model, tmp_path, name, units)
    assert_changed(mine, ours(tiny_model, tmp_path, name, units[:1]))
    pipe = reference_pipe(StableDiffusionControlNetPipeline, tiny_model, [nets["sd1"], nets["sd1_b"]],
                          safety_checker=None)
    reference = theirs(pipe, name, image=[Image.open(pictures["square"]), Image.open(pictures["bar"])],
                       controlnet_conditioning_scale=[0.8, 1.2], height=16, width=16)
    assert_parity(mine, reference)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("setting, theirs_setting", [
    (dict(guess_mode=True), dict(guess_mode=True)),
    (dict(start=0.25, end=0.75), dict(control_guidance_start=0.25, control_guidance_end=0.75)),
], ids=["guess_mode", "window"])
def test_unit_settings(name, setting, theirs_setting, tiny_model, nets, pictures, tmp_path):
    """Guess mode (the conditional half only) and a start/end window each change the image and match diffusers."""
    mine = ours(tiny_model, tmp_path, name, [unit(nets["sd1"], pictures["square"], **setting)])
    assert_changed(mine, ours(tiny_model, tmp_path, name, [unit(nets["sd1"], pictures["square"])]))
    pipe = reference_pipe(StableDiffusionControlNetPipeline, tiny_model, [nets["sd1"]], safety_checker=None)
    reference = theirs(pipe, name, image=Image.open(pictures["square"]), height=16, width=16, **theirs_setting)
    assert_parity(mine, reference)


def entry_text(**settings) -> str:
    """A controlnets entry as a command-line value."""
    return "{" + ", ".join(f"{key}: {value}" for key, value in settings.items()) + "}"


@pytest.mark.parametrize("settings, expected", [
    (dict(net="sdxl"), "controlnets[0].path {sdxl} is a ControlNet for Stable Diffusion XL (cross_attention_dim 64, "
                       "block_out_channels [32, 64]); model.path {model} is Stable Diffusion 1.x (cross_attention_dim "
                       "32, block_out_channels [32, 64])."),
    (dict(image="wide"), "controlnets[0].image {wide} is 24x12, another aspect than the run's 16x16; crop it"),
    (dict(image="missing"), "controlnets[0].image file {missing} does not exist."),
    (dict(weight=3), "controlnets[0].weight must be a number in [0, 2]; got 3.0."),
    (dict(start=0.6, end=0.4), "controlnets[0].start and controlnets[0].end must satisfy 0 <= start < end <= 1"),
    (dict(preprocessor="hed"), "controlnets[0].preprocessor must be one of none, canny, depth, inpaint; got 'hed'."),
    (dict(preprocessor="inpaint"), "controlnets[0].preprocessor inpaint needs task inpaint (its mask marks"),
    (dict(preprocessor="depth"), "controlnets[0].preprocessor depth needs a depth estimator: set controlnets[0]."),
    (dict(net="model"), "controlnets[0].path {model} is a model folder (model_index.json) without a ControlNet's "
                        "config.json."),
    (dict(net="unet"), "controlnets[0].path {unet} holds a UNet2DConditionModel, not a ControlNetModel."),
    (dict(net="none"), "controlnets[0].path {none} does not exist (a ControlNet folder or an owner/name hub id"),
    (dict(net="file"), "controlnets[0].path {file} cannot be read as a .safetensors file"),
    (dict(net="ckpt"), "controlnets[0].path {ckpt} is a .ckpt file; a single-file ControlNet is read from "),
])
def test_mistakes_are_one_sentence_before_loading(settings, expected, tiny_model, nets, pictures, tmp_path, capsys,
                                                  no_weights, monkeypatch):
    from test_sdxl_runs import refused

    monkeypatch.setattr(ControlNetModel, "from_pretrained", no_weights_loaded)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (24, 12)).save(wide)
    for name in ("file.safetensors", "file.ckpt"):
        (tmp_path / name).write_bytes(b"0")
    names = {**{k: str(v) for k, v in nets.items()}, "model": str(tiny_model), "unet": str(tiny_model / "unet"),
             "none": str(tmp_path / "none"), "file": str(tmp_path / "file.safetensors"),
             "ckpt": str(tmp_path / "file.ckpt"), "wide": str(wide), "missing": str(tmp_path / "missing.png")}
    entry = {"path": names[settings.get("net", "sd1")], "image": names.get(settings.get("image"), pictures["square"]),
             **{k: v for k, v in settings.items() if k not in ("net", "image")}}
    cfg = make_config(tiny_model, tmp_path / "out", prompt=PROMPT, controlnets=f"[{entry_text(**entry)}]")
    assert expected.format(**names) in refused(cfg, capsys)


def no_weights_loaded(*args, **kwargs):
    """ControlNetModel.from_pretrained in a test of input refused before loading."""
    raise AssertionError("ControlNet weights were loaded before the input was checked")


def test_a_single_file_controlnet_equals_its_folder(tiny_model, nets, pictures, tmp_path):
    file = write_controlnet_checkpoint(nets["sd1"], tmp_path / "controlnet.safetensors")
    single = ours(tiny_model, tmp_path, "ddim", [unit(file, pictures["square"], config=nets["sd1"])])
    folder = ours(tiny_model, tmp_path, "ddim", [unit(nets["sd1"], pictures["square"])])
    assert max_pixel_difference(single, folder) == 0


def test_png_names_each_controlnet_and_the_yaml_regenerates_it(tiny_model, nets, pictures, tmp_path):
    from pipeline.cli import main as cli

    units = [unit(nets["sd1"], pictures["square"], preprocessor="canny", weight=0.8),
             unit(nets["sd1_b"], pictures["bar"], start=0.25, guess_mode=True)]
    [image] = ours(tiny_model, tmp_path, "ddim", units, num_images=1)
    [path] = (tmp_path / "out0").glob("*.png")
    text = Image.open(path).info["parameters"]
    assert ('ControlNet 0: "Module: canny, Model: sd1_a, Weight: 0.8, Resize Mode: Just Resize, Threshold A: 100, '
            'Threshold B: 200, Guidance Start: 0.0, Guidance End: 1.0, Control Mode: Balanced", ControlNet 1: '
            '"Module: none, Model: sd1_b, Weight: 1.0, Resize Mode: Just Resize, Guidance Start: 0.25, Guidance End: '
            '1.0, Control Mode: ControlNet is more important"') in text
    import hashlib

    digest = hashlib.sha256(Path(pictures["bar"]).read_bytes()).hexdigest()[:12]
    assert f"# controlnets[1].image {pictures['bar']} sha256 {digest}\n" in path.with_suffix(".yaml").read_text()
    again = tmp_path / "again"
    assert cli.run_cli(str(path.with_suffix(".yaml")), [f"output_dir={again}"]) == 0
    assert next(again.glob("*.png")).read_bytes() == path.read_bytes()


def test_canny_map_is_opencv_edges_in_three_channels(pictures):
    import cv2

    from pipeline.controls.preprocess import control_map

    edges = np.asarray(control_map(str(pictures["square"]), "canny", "controlnets[0]"))
    expected = cv2.Canny(np.asarray(Image.open(pictures["square"]).convert("RGB")), 100, 200)
    assert edges.shape == (24, 24, 3) and (edges == expected[:, :, None]).all() and edges.any()


def test_a_compare_axis_over_the_controlnets(tiny_model, nets, pictures, tmp_path):
    """compare.axes over the whole controlnets list, and over a key inside its entry (controlnets.0.weight, as
    A1111's X/Y/Z plots a unit's weight): the weight changes the image, weight 0 is the model without ControlNet."""
    from test_compare import load, run

    entries = [entry_text(path=nets["sd1"], image=pictures["square"], weight=w) for w in (0, 1)]
    result = run(load(tiny_model, tmp_path / "grid", "steps=3", "compare.axes=[{key: controlnets, values: "
                      f"[[], [{entries[0]}], [{entries[1]}]]}}]"))
    assert [c.status for c in result.cells] == ["ok"] * 3
    plain, zero, one = (np.asarray(Image.open(c.image)) for c in result.cells)
    assert (plain == zero).all() and max_pixel_difference([one], [plain]) > CHANGED
    weights = run(load(tiny_model, tmp_path / "weights", "steps=3", f"controlnets=[{entries[1]}]",
                       "compare.axes=[{key: controlnets.0.weight, values: [0, 1]}]"))
    assert [np.array_equal(np.asarray(Image.open(c.image)), image) for c, image in zip(weights.cells, (zero, one))] \
        == [True, True]