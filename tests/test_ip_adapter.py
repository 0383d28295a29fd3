"""IP-Adapter runs equal diffusers' StableDiffusionPipeline and StableDiffusionXLPipeline with load_ip_adapter and
set_ip_adapter_scale (random weights made as diffusers' IP-Adapter tests make them) within 1/255 per pixel, for
three schedulers; IP-Adapter Plus and several adapters at once too; mistakes are one sentence before loading."""

import json
import shutil

import numpy as np
import pytest
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from omegaconf import OmegaConf
from PIL import Image
from transformers import CLIPVisionModelWithProjection

from conftest import as_uint8, generators, make_config, max_pixel_difference
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_adapters import build_tiny_image_encoder, build_tiny_ip_adapter, build_tiny_t2i_adapter
from pipeline.lab.fixtures.tiny_controlnet import build_tiny_controlnet
from pipeline.run import generate
from test_sdxl_runs import refused

TOLERANCE = 1  # out of 255, per pixel
CHANGED = 8  # the least pixel difference that shows an IP-Adapter (or a second one) changes the image
SCHEDULERS = ["ddim", "euler_a", "dpmpp_2m_karras"]
SEED, COUNT, STEPS, PROMPT = 3, 2, 4, "a red circle"


@pytest.fixture(scope="module")
def files(tiny_model, sdxl_base, tmp_path_factory):
    """A vision encoder, IP-Adapter files for the tiny SD 1.x model (plain and Plus) and the tiny SDXL base, two
    reference pictures and a 16x16 starting picture for img2img."""
    folder = tmp_path_factory.mktemp("ip_adapters")
    y, x = np.mgrid[0:40, 0:48]
    warm = np.stack([x * 5, y * 6, 255 - x * 5], axis=-1).astype(np.uint8)
    cool = np.zeros((40, 48, 3), np.uint8)
    cool[5:30, 10:40] = [20, 90, 250]
    for name, array in (("warm", warm), ("cool", cool), ("start", warm[:16, 8:24])):
        Image.fromarray(array).save(folder / f"{name}.png")
    return {"encoder": build_tiny_image_encoder(folder / "encoder"),
            "sd1": build_tiny_ip_adapter(folder / "ip_sd1.safetensors", tiny_model / "unet", seed=1),
            "sd1_plus": build_tiny_ip_adapter(folder / "ip_sd1_plus.safetensors", tiny_model / "unet", seed=2,
                                              plus=True),
            "sdxl": build_tiny_ip_adapter(folder / "ip_sdxl.safetensors", sdxl_base / "unet", seed=3),
            "warm": folder / "warm.png", "cool": folder / "cool.png", "start": folder / "start.png"}


def ours(model, files, tmp_path, name, units, **settings) -> list:
    """The paths of our run of COUNT images with the given ip_adapters entries."""
    cfg = make_config(model, tmp_path / f"out{len(list(tmp_path.iterdir()))}", scheduler__name=name, prompt=PROMPT,
                      steps=STEPS, seed=SEED, num_images=COUNT, image_encoder=files["encoder"], **settings)
    return list(generate.run(OmegaConf.merge(cfg, {"ip_adapters": units}), progress=False))


def images(paths) -> list[Image.Image]:
    """The saved images."""
    return [Image.open(p).convert("RGB") for p in paths]


_pipes = {}


def reference_pipe(cls, model, encoder, adapters, **kwargs):
    """One diffusers pipeline per class, model and IP-Adapter files, loaded with load_ip_adapter."""
    key = (cls, str(model), tuple(map(str, adapters)))
    if key not in _pipes:
        pipe = cls.from_pretrained(model, **kwargs)
        pipe.register_modules(image_encoder=CLIPVisionModelWithProjection.from_pretrained(encoder))
        pipe.load_ip_adapter([str(a.parent) for a in adapters], subfolder=[""] * len(adapters),
                             weight_name=[a.name for a in adapters], image_encoder_folder=None)
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(pipe.scheduler.config)
        _pipes[key] = pipe
    return _pipes[key]


def theirs(pipe, name, scales, pictures, **kwargs) -> np.ndarray:
    """The reference call: the scheduler built as ours, one generator per image seeded SEED + i."""
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, [SEED + i for i in range(COUNT)])
    pipe.set_ip_adapter_scale(scales)
    return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=7.5, num_images_per_prompt=COUNT,
                generator=generators(SEED, COUNT), output_type="np",
                ip_adapter_image=[Image.open(p) for p in pictures], **kwargs).images


def assert_parity(mine, reference, without) -> None:
    """The IP-Adapter changes the image, the reference is not trivial, and ours is within TOLERANCE."""
    assert max_pixel_difference(mine, without) > CHANGED
    stack = as_uint8(reference).astype(int)
    assert stack.std() > 2 and np.abs(stack[0] - stack[1]).max() > 2, "reference images are trivial"
    assert max_pixel_difference(mine, reference) <= TOLERANCE


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sd1(name, tiny_model, files, tmp_path):
    paths = ours(tiny_model, files, tmp_path, name, [{"path": str(files["sd1"]), "image": str(files["warm"]),
                                                      "weight": 0.7}])
    pipe = reference_pipe(StableDiffusionPipeline, tiny_model, files["encoder"], [files["sd1"]], safety_checker=None,
                          requires_safety_checker=False)
    reference = theirs(pipe, name, [0.7], [files["warm"]], height=16, width=16)
    assert_parity(images(paths), reference, images(ours(tiny_model, files, tmp_path, name, [])))
    text = Image.open(paths[0]).info["parameters"]
    assert 'IP-Adapter 0: "Model: ip_sd1, Weight: 0.7"' in text and "IP-Adapter encoder: encoder" in text


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sdxl(name, sdxl_base, files, tmp_path):
    size = dict(height=32, width=32)
    mine = images(ours(sdxl_base, files, tmp_path, name, [{"path": str(files["sdxl"]), "image": str(files["warm"])}],
                       **size))
    pipe = reference_pipe(StableDiffusionXLPipeline, sdxl_base, files["encoder"], [files["sdxl"]])
    reference = theirs(pipe, name, [1.0], [files["warm"]], **size)
    assert_parity(mine, reference, images(ours(sdxl_base, files, tmp_path, name, [], **size)))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_plus_beside_a_plain_one(name, tiny_model, files, tmp_path):
    """Two IP-Adapters at once, the second of the Plus kind (hidden states; a zero image's for the negative)."""
    units = [{"path": str(files["sd1"]), "image": str(files["warm"]), "weight": 0.5},
             {"path": str(files["sd1_plus"]), "image": str(files["cool"]), "weight": 1.5}]
    mine = images(ours(tiny_model, files, tmp_path, name, units))
    pipe = reference_pipe(StableDiffusionPipeline, tiny_model, files["encoder"], [files["sd1"], files["sd1_plus"]],
                          safety_checker=None, requires_safety_checker=False)
    reference = theirs(pipe, name, [0.5, 1.5], [files["warm"], files["cool"]], height=16, width=16)
    assert_parity(mine, reference, images(ours(tiny_model, files, tmp_path, name, units[:1])))


def test_img2img(tiny_model, files, tmp_path):
    """A control joins any task: IP-Adapter with img2img equals StableDiffusionImg2ImgPipeline with it."""
    unit, task = {"path": str(files["sd1"]), "image": str(files["warm"])}, dict(task="img2img", image=files["start"])
    mine = images(ours(tiny_model, files, tmp_path, "ddim", [unit], strength=0.7, **task))
    pipe = reference_pipe(StableDiffusionImg2ImgPipeline, tiny_model, files["encoder"], [files["sd1"]],
                          safety_checker=None, requires_safety_checker=False)
    reference = theirs(pipe, "ddim", [1.0], [files["warm"]], image=Image.open(files["start"]), strength=0.7)
    assert_parity(mine, reference, images(ours(tiny_model, files, tmp_path, "ddim", [], strength=0.7, **task)))

def narrower_encoder(files, tmp_path):
    """A copy of the encoder folder whose config says its image embeddings are 16 wide."""
    copy = tmp_path / "narrow"
    shutil.copytree(files["encoder"], copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "projection_dim": 16}))
    return copy


@pytest.fixture
def no_control_weights(no_weights, monkeypatch):
    """no_weights, and the control's own weights refused too."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(CLIPVisionModelWithProjection, "from_pretrained", refuse)


@pytest.mark.parametrize("change, expected", [
    (dict(encoder=""), "ip_adapters need a CLIP vision encoder: set image_encoder to its folder"),
    (dict(encoder="narrow"), "reads image embeddings (projection_dim) 32 wide; image_encoder gives 16"),
    (dict(model="sdxl"), "is an IP-Adapter for a model of cross-attention width 32; model.path"),
    (dict(path="missing"), "ip_adapters[0].path"),
    (dict(path="bin"), "must be a .safetensors file"),
    (dict(path="encoder weights"), "is not an IP-Adapter weight file"),
    (dict(image="missing"), "ip_adapters[0].image file"),
    (dict(weight=3), "ip_adapters[0].weight must be a number in [0, 2]; got 3"),
    (dict(performance__attention_slicing=True), "performance.attention_slicing cannot be combined with ip_adapters"),
])
def test_mistakes_are_one_sentence_before_loading(change, expected, tiny_model, sdxl_base, files, tmp_path, capsys,
                                                  no_control_weights):
    paths = {"missing": tmp_path / "missing.safetensors", "bin": tmp_path / "ip.bin",
             "encoder weights": files["encoder"] / "model.safetensors"}
    paths["bin"].write_bytes(b"\0")
    unit = {"path": str(paths.get(change.pop("path", ""), files["sd1"])), "weight": change.pop("weight", 1.0),
            "image": str(files["warm"] if change.pop("image", "") != "missing" else tmp_path / "missing.png")}
    encoder = change.pop("encoder", "given")
    encoder = {"given": files["encoder"], "narrow": narrower_encoder(files, tmp_path), "": ""}[encoder]
    model = sdxl_base if change.pop("model", "") == "sdxl" else tiny_model
    cfg = make_config(model, tmp_path / "out", prompt="a", image_encoder=encoder, **change)
    assert expected in refused(OmegaConf.merge(cfg, {"ip_adapters": [unit]}), capsys)


def test_a_shared_load_takes_each_runs_image_and_weight(tiny_model, files, tmp_path):
    """A job's lines that share one load (same paths) but change the image and weight get their own."""
    configs = [OmegaConf.merge(make_config(tiny_model, tmp_path / "out", prompt=PROMPT, steps=STEPS,
                                           image_encoder=files["encoder"]),
                               {"ip_adapters": [{"path": str(files["sd1"]), "image": str(files[picture]),
                                                 "weight": weight}]})
               for picture, weight in (("warm", 0.7), ("cool", 1.3))]
    components = generate.load(generate.check(configs[0]))
    first, shared = (generate.generate_images(components, cfg, [SEED], 16, 16, progress=False) for cfg in configs)
    fresh = generate.generate_images(generate.load(generate.check(configs[1])), configs[1], [SEED], 16, 16,
                                     progress=False)
    assert max_pixel_difference(shared, first) > CHANGED and max_pixel_difference(shared, fresh) == 0


def test_the_model_folders_encoder_is_the_default(tiny_model, files, tmp_path):
    """With image_encoder unset, the model folder's image_encoder part is the encoder."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    shutil.copytree(files["encoder"], model / "image_encoder")
    unit = {"path": str(files["sd1"]), "image": str(files["warm"])}
    cfg = OmegaConf.merge(make_config(model, tmp_path / "out", prompt=PROMPT, steps=STEPS, seed=SEED),
                          {"ip_adapters": [unit]})
    path = next(generate.run(cfg, progress=False))
    assert "IP-Adapter encoder: image_encoder" in Image.open(path).info["parameters"]
    given = ours(tiny_model, files, tmp_path, "ddim", [unit])[:1]  # the same seed, the encoder named
    assert max_pixel_difference(images([path]), images(given)) == 0


def test_with_a_controlnet_and_a_t2i_adapter(tiny_model, files, tmp_path):
    """The three controls in one run: the IP-Adapter still changes the image, and the PNG names all three."""
    folder = tmp_path / "controls"
    controls = {"controlnets": [{"path": str(build_tiny_controlnet(folder / "net", tiny_model)),
                                 "image": str(files["warm"])}],
                "adapters": [{"path": str(build_tiny_t2i_adapter(folder / "adapter")), "image": str(files["cool"])}]}
    cfg = OmegaConf.merge(make_config(tiny_model, tmp_path / "out", prompt=PROMPT, steps=STEPS, seed=SEED,
                                      width=24, height=20, image_encoder=files["encoder"]), controls)
    alone = next(generate.run(cfg, progress=False))
    path = next(generate.run(OmegaConf.merge(cfg, {"ip_adapters": [{"path": str(files["sd1"]),
                                                                    "image": str(files["warm"])}]}), progress=False))
    assert max_pixel_difference(images([path]), images([alone])) > CHANGED
    text = Image.open(path).info["parameters"]
    assert all(f"{name} 0: " in text for name in ("ControlNet", "T2I-Adapter", "IP-Adapter"))
