"""T2I-Adapter runs equal diffusers' StableDiffusionAdapterPipeline and StableDiffusionXLAdapterPipeline (one adapter,
several, adapter_conditioning_factor) on the tiny folders within 1/255 per pixel, for three schedulers; mistakes are
one sentence before loading; the PNG names each adapter."""

import json
import shutil

import numpy as np
import pytest
from diffusers import StableDiffusionAdapterPipeline, StableDiffusionXLAdapterPipeline, T2IAdapter
from omegaconf import OmegaConf
from PIL import Image

from conftest import as_uint8, generators, make_config, max_pixel_difference
from pipeline.controls.t2i_adapter import RESIDUALS
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_adapters import build_tiny_t2i_adapter
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from pipeline.models.unet_call import UNetCall
from pipeline.run import generate
from test_sdxl_runs import refused

TOLERANCE = 1  # out of 255, per pixel
CHANGED = 8  # the least pixel difference that shows an adapter (or its setting) changes the image
SCHEDULERS = ["ddim", "euler_a", "dpmpp_2m_karras"]
SEED, COUNT, STEPS, PROMPT = 3, 2, 4, "a red circle"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Two RGB adapters and a grayscale (sketch-like) one, shaped for both tiny UNets."""
    folder = tmp_path_factory.mktemp("adapters")
    return {"a": build_tiny_t2i_adapter(folder / "a", seed=0), "b": build_tiny_t2i_adapter(folder / "b", seed=1),
            "gray": build_tiny_t2i_adapter(folder / "gray", seed=2, in_channels=1)}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Control maps: a square and a bar (24x24, resized to the run), and a 24x16 one of another aspect."""
    folder = tmp_path_factory.mktemp("adapter_inputs")
    square, bar = np.zeros((24, 24, 3), np.uint8), np.zeros((24, 24, 3), np.uint8)
    square[6:18, 5:15] = 255
    bar[2:22, 16:20] = [255, 128, 0]
    paths = {name: folder / f"{name}.png" for name in ("square", "bar", "wide")}
    for name, array in (("square", square), ("bar", bar), ("wide", square[:16])):
        Image.fromarray(array).save(paths[name])
    return paths


def ours(model, tmp_path, name, units, **settings) -> list:
    """The paths of our run of COUNT images with the given adapters entries."""
    cfg = make_config(model, tmp_path / f"out{len(list(tmp_path.iterdir()))}", scheduler__name=name, prompt=PROMPT,
                      steps=STEPS, seed=SEED, num_images=COUNT, **settings)
    return list(generate.run(OmegaConf.merge(cfg, {"adapters": units}), progress=False))


def images(paths) -> list[Image.Image]:
    """The saved images."""
    return [Image.open(p).convert("RGB") for p in paths]


_pipes = {}


def reference_pipe(cls, model, folders, **kwargs):
    """One diffusers adapter pipeline per class, model and adapters, its scheduler config kept aside."""
    key = (cls, str(model), tuple(map(str, folders)))
    if key not in _pipes:
        loaded = [T2IAdapter.from_pretrained(folder) for folder in folders]
        pipe = cls.from_pretrained(model, adapter=loaded[0] if len(loaded) == 1 else loaded, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(pipe.scheduler.config)
        _pipes[key] = pipe
    return _pipes[key]


def theirs(pipe, name, **kwargs) -> np.ndarray:
    """The reference call: the scheduler built as ours, one generator per image seeded SEED + i."""
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, [SEED + i for i in range(COUNT)])
    return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=7.5, num_images_per_prompt=COUNT,
                generator=generators(SEED, COUNT), output_type="np", **kwargs).images


def assert_parity(mine, reference, without) -> None:
    """The adapter (or setting) changes the image, the reference is not trivial, and ours is within TOLERANCE."""
    assert max_pixel_difference(mine, without) > CHANGED
    stack = as_uint8(reference).astype(int)
    assert stack.std() > 2 and np.abs(stack[0] - stack[1]).max() > 2, "reference images are trivial"
    assert max_pixel_difference(mine, reference) <= TOLERANCE


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sd1(name, tiny_model, adapters, pictures, tmp_path):
    paths = ours(tiny_model, tmp_path, name, [{"path": str(adapters["a"]), "image": str(pictures["square"]),
                                               "weight": 0.8}])
    pipe = reference_pipe(StableDiffusionAdapterPipeline, tiny_model, [adapters["a"]], safety_checker=None)
    reference = theirs(pipe, name, image=Image.open(pictures["square"]), adapter_conditioning_scale=0.8, height=16,
                       width=16)
    assert_parity(images(paths), reference, images(ours(tiny_model, tmp_path, name, [])))
    text = Image.open(paths[0]).info["parameters"]
    assert 'T2I-Adapter 0: "Module: none, Model: a, Weight: 0.8"' in text and "T2I-Adapter factor" not in text


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sdxl(name, sdxl_base, adapters, pictures, tmp_path):
    unit, size = {"path": str(adapters["a"]), "image": str(pictures["square"])}, dict(height=32, width=32)
    mine = images(ours(sdxl_base, tmp_path, name, [unit], **size))
    pipe = reference_pipe(StableDiffusionXLAdapterPipeline, sdxl_base, [adapters["a"]])
    reference = theirs(pipe, name, image=Image.open(pictures["square"]), **size)
    assert_parity(mine, reference, images(ours(sdxl_base, tmp_path, name, [], **size)))


def test_the_factor_cuts_the_steps(sdxl_base, adapters, pictures, tmp_path, monkeypatch):
    """adapter_conditioning_factor 0.5 adds the features to the first 2 of the 4 steps. The tiny SDXL's last steps
    move its pixels by 1/255 at most, so the cut is seen in the UNet's arguments; the image equals diffusers'."""
    given, arguments = [], UNetCall.arguments
    monkeypatch.setattr(UNetCall, "arguments", lambda self, x, c: given.append(RESIDUALS in c) or arguments(self, x, c))
    unit, size = {"path": str(adapters["a"]), "image": str(pictures["square"])}, dict(height=32, width=32)
    paths = ours(sdxl_base, tmp_path, "ddim", [unit], adapter_conditioning_factor=0.5, **size)
    assert given == [True, True, False, False] * COUNT  # one batch per image
    pipe = reference_pipe(StableDiffusionXLAdapterPipeline, sdxl_base, [adapters["a"]])
    reference = theirs(pipe, "ddim", image=Image.open(pictures["square"]), adapter_conditioning_factor=0.5, **size)
    assert max_pixel_difference(images(paths), reference) <= TOLERANCE
    assert "T2I-Adapter factor: 0.5" in Image.open(paths[0]).info["parameters"]


def test_several_adapters_and_a_grayscale_one(tiny_model, adapters, pictures, tmp_path):
    """Features weighted and summed as MultiAdapter sums them; a 1-channel adapter reads the map in grayscale."""
    units = [{"path": str(adapters["a"]), "image": str(pictures["square"]), "weight": 0.8},
             {"path": str(adapters["gray"]), "image": str(pictures["bar"]), "weight": 1.2}]
    mine = images(ours(tiny_model, tmp_path, "ddim", units))
    pipe = reference_pipe(StableDiffusionAdapterPipeline, tiny_model, [adapters["a"], adapters["gray"]],
                          safety_checker=None)
    reference = theirs(pipe, "ddim", image=[Image.open(pictures["square"]), Image.open(pictures["bar"]).convert("L")],
                       adapter_conditioning_scale=[0.8, 1.2], height=16, width=16)
    assert_parity(mine, reference, images(ours(tiny_model, tmp_path, "ddim", units[:1])))


def test_img2img_changes_with_an_adapter(tiny_model, adapters, pictures, tmp_path):
    """A control joins any task; diffusers has no adapter img2img pipeline to compare with, so this shows the
    features reach an img2img run (of the start picture's 24x24 size) and change it."""
    task = dict(task="img2img", image=pictures["square"], strength=0.7)
    mine = ours(tiny_model, tmp_path, "ddim", [{"path": str(adapters["a"]), "image": str(pictures["bar"])}], **task)
    assert Image.open(mine[0]).size == (24, 24)
    assert max_pixel_difference(images(mine), images(ours(tiny_model, tmp_path, "ddim", [], **task))) > CHANGED

@pytest.fixture(scope="module")
def sd2_model(tmp_path_factory):
    """A tiny SD 2.x folder (no T2I-Adapter exists for it)."""
    return build_tiny_model(tmp_path_factory.mktemp("sd2") / "model", sd2=True)


@pytest.fixture
def no_control_weights(no_weights, monkeypatch):
    """no_weights, and the control's own weights refused too."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(T2IAdapter, "from_pretrained", refuse)


@pytest.mark.parametrize("change, expected", [
    (dict(model="sd2"), "for which diffusers has no adapter pipeline"),
    (dict(image="wide"), "is 24x16, another aspect than the run's 16x16"),
    (dict(image="missing"), "adapters[0].image file"),
    (dict(weight=3), "adapters[0].weight must be a number in [0, 2]; got 3"),
    (dict(factor=1.5), "adapter_conditioning_factor must be a share of the steps in [0, 1]; got 1.5"),
    (dict(path="not_an_adapter"), "is not a readable T2I-Adapter folder or hub id"),
    (dict(path="wider"), "is a T2I-Adapter for another model: its features are 64 channels at 1/4"),
    (dict(height=18), "width and height must be multiples of 4 for adapters[0]"),
    (dict(preprocessor="pose"), "adapters[0].preprocessor must be one of none, canny; got 'pose'"),
])
def test_mistakes_are_one_sentence_before_loading(change, expected, tiny_model, sd2_model, adapters, pictures,
                                                  tmp_path, capsys, no_control_weights):
    adapter = adapters["a"]
    if change.get("path") == "wider":  # an adapter whose first block is 64 wide: another model's
        adapter = tmp_path / "wider"
        shutil.copytree(adapters["a"], adapter)
        config = json.loads((adapter / "config.json").read_text())
        (adapter / "config.json").write_text(json.dumps({**config, "channels": [64, 64]}))
    elif change.get("path"):
        adapter = tmp_path / change["path"]
    image = pictures.get(change.get("image", "square"), tmp_path / "missing.png")
    unit = {"path": str(adapter), "image": str(image), "weight": change.get("weight", 1.0),
            "preprocessor": change.get("preprocessor", "none")}
    model = sd2_model if change.get("model") == "sd2" else tiny_model
    size = dict(height=change["height"], width=change["height"]) if "height" in change else {}
    cfg = make_config(model, tmp_path / "out", prompt="a", adapter_conditioning_factor=change.get("factor", 1.0),
                      **size)
    assert expected in refused(OmegaConf.merge(cfg, {"adapters": [unit]}), capsys)


def test_a_shared_load_takes_each_runs_image_and_weight(tiny_model, adapters, pictures, tmp_path):
    """A job's lines that share one load (same paths) but change the image and weight get their own."""
    configs = [OmegaConf.merge(make_config(tiny_model, tmp_path / "out", prompt=PROMPT, steps=STEPS),
                               {"adapters": [{"path": str(adapters["a"]), "image": str(pictures[picture]),
                                              "weight": weight}]})
               for picture, weight in (("square", 0.7), ("bar", 1.3))]
    components = generate.load(generate.check(configs[0]))
    first, shared = (generate.generate_images(components, cfg, [SEED], 16, 16, progress=False) for cfg in configs)
    fresh = generate.generate_images(generate.load(generate.check(configs[1])), configs[1], [SEED], 16, 16,
                                     progress=False)
    assert max_pixel_difference(shared, first) > CHANGED and max_pixel_difference(shared, fresh) == 0
