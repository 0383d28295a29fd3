"""img2img, inpaint (4- and 9-channel), depth2img and outpaint equal diffusers' pipelines on the same parts and seeds."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionDepth2ImgPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
from PIL import Image

from conftest import as_uint8, make_config, max_pixel_difference
from pipeline.run import generate
from pipeline.common.inputs import mask_array
from pipeline.engine.latents import encode, from_pil, generators_for, latent_mask
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from pipeline.variants.outpaint import pad

TOLERANCE = 2
SCHEDULERS = ["pndm", "lms", "ddim", "euler_a", "dpmpp_2m_karras"]
SEED, COUNT, STEPS = 3, 2, 5


@pytest.fixture(scope="session")
def inpaint_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny9") / "model", unet_in_channels=9)


@pytest.fixture(scope="session")
def depth_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny5") / "model", unet_in_channels=5, depth_estimator=True)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """A 16x16 test picture (gradient, a square, noise), a mask over its right half, and a depth image."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:16]
    picture = np.stack([x * 15, y * 15, 255 - x * 15], axis=-1).astype(float)
    picture[4:10, 3:9] = [250, 40, 40]
    picture = np.clip(picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[2:14, 8:15] = 255
    depth = (np.hypot(x - 6, y - 7) * -14 + 220).clip(0, 255).astype(np.uint8)
    paths = {"image": folder / "image.png", "mask": folder / "mask.png", "depth": folder / "depth.png",
             "small": folder / "small.png"}
    Image.fromarray(picture).save(paths["image"])
    Image.fromarray(mask, mode="L").save(paths["mask"])
    Image.fromarray(depth, mode="L").save(paths["depth"])
    Image.fromarray(picture[4:12, 2:14]).save(paths["small"])  # 12x8, for outpainting
    return paths


_pipes = {}


def reference_pipe(cls, folder):
    """One diffusers pipeline per class and folder, with its original scheduler config kept aside."""
    key = (cls, str(folder))
    if key not in _pipes:
        pipe = cls.from_pretrained(folder, safety_checker=None) if cls is not StableDiffusionDepth2ImgPipeline \
            else cls.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(pipe.scheduler.config)
        _pipes[key] = pipe
    return _pipes[key]


def theirs(pipe, name, seeds, **kwargs):
    """The reference call with one generator per image and the scheduler built as ours is."""
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, seeds)
    return pipe("a red circle", num_inference_steps=STEPS, guidance_scale=7.5, num_images_per_prompt=len(seeds),
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="np", **kwargs).images


def theirs_one_by_one(pipe, name, **kwargs):
    """diffusers' inpaint encodes the image with generator[0] only, so image i of a batch depends on seed 0.
    Our images depend on their own seed alone; each equals a single-image diffusers run with seed + i."""
    return np.concatenate([theirs(pipe, name, [SEED + i], **kwargs) for i in range(COUNT)])


def ours(model, tmp_path, task, name, **settings):
    cfg = make_config(model, tmp_path / "out", task=task, scheduler__name=name, prompt="a red circle",
                      steps=STEPS, seed=SEED, num_images=COUNT, **settings)
    return [Image.open(p).convert("RGB") for p in generate.run(cfg, progress=False)]


def assert_parity(mine, reference):
    stack = as_uint8(reference).astype(int)
    assert stack.std() > 2 and np.abs(stack[0] - stack[1]).max() > 2, "reference images are trivial"
    assert max_pixel_difference(mine, reference) <= TOLERANCE


@pytest.mark.parametrize("name", SCHEDULERS)
def test_img2img(name, tiny_model, inputs, tmp_path):
    pipe = reference_pipe(StableDiffusionImg2ImgPipeline, tiny_model)
    reference = theirs(pipe, name, [SEED, SEED + 1], image=Image.open(inputs["image"]), strength=0.6)
    assert_parity(ours(tiny_model, tmp_path, "img2img", name, image=inputs["image"], strength=0.6), reference)


@pytest.mark.parametrize("strength", [1.0, 0.7])
@pytest.mark.parametrize("channels", [4, 9])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_inpaint(name, channels, strength, tiny_model, inpaint_model, inputs, tmp_path):
    model = inpaint_model if channels == 9 else tiny_model
    pipe = reference_pipe(StableDiffusionInpaintPipeline, model)
    reference = theirs_one_by_one(pipe, name, image=Image.open(inputs["image"]), mask_image=Image.open(inputs["mask"]),
                                  strength=strength)
    mine = ours(model, tmp_path, "inpaint", name, image=inputs["image"], mask=inputs["mask"], strength=strength)
    assert_parity(mine, reference)


@pytest.mark.parametrize("given_map", [False, True], ids=["estimator", "depth_map"])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_depth2img(name, given_map, depth_model, inputs, tmp_path):
    pipe = reference_pipe(StableDiffusionDepth2ImgPipeline, depth_model)
    depth = None
    settings = {"image": inputs["image"], "strength": 0.7}
    if given_map:
        depth = torch.from_numpy(np.asarray(Image.open(inputs["depth"]), dtype=np.float32) / 255.0)[None]
        settings["depth_map"] = inputs["depth"]
    reference = theirs(pipe, name, [SEED, SEED + 1], image=Image.open(inputs["image"]), depth_map=depth, strength=0.7)
    assert_parity(ours(depth_model, tmp_path, "depth2img", name, **settings), reference)


def test_depth_source_matters(depth_model, inputs):
    """The estimator's depth and the given map must differ, or the two depth2img cases test one thing."""
    pipe = reference_pipe(StableDiffusionDepth2ImgPipeline, depth_model)
    image = Image.open(inputs["image"])
    depth = torch.from_numpy(np.asarray(Image.open(inputs["depth"]), dtype=np.float32) / 255.0)[None]
    estimated = theirs(pipe, "ddim", [SEED], image=image, strength=0.7)
    given = theirs(pipe, "ddim", [SEED], image=image, depth_map=depth, strength=0.7)
    assert max_pixel_difference(estimated, given) > 2


@pytest.mark.parametrize("channels", [4, 9])
@pytest.mark.parametrize("name", ["pndm", "euler_a"])
def test_outpaint_is_inpaint_of_the_padded_image(name, channels, tiny_model, inpaint_model, inputs, tmp_path):
    model = inpaint_model if channels == 9 else tiny_model
    mine = ours(model, tmp_path, "outpaint", name, image=inputs["small"], strength=1.0,
                outpaint__left=2, outpaint__right=2, outpaint__top=4, outpaint__bottom=4)
    cfg = make_config(model, tmp_path, outpaint__left=2, outpaint__right=2, outpaint__top=4, outpaint__bottom=4)
    image, mask = pad(Image.open(inputs["small"]).convert("RGB"), cfg)
    assert image.size == (16, 16)
    reference = theirs_one_by_one(reference_pipe(StableDiffusionInpaintPipeline, model), name, image=image,
                                  mask_image=mask, strength=1.0)
    assert_parity(mine, reference)


def test_keep_unmasked_keeps_every_masked_out_pixel(tiny_model, inputs, tmp_path):
    for blur in (0, 1):
        images = ours(tiny_model, tmp_path / str(blur), "inpaint", "euler_a", image=inputs["image"],
                      mask=inputs["mask"], keep_unmasked="true", mask_blur=blur)
        original = np.asarray(Image.open(inputs["image"]))
        mask = np.asarray(Image.open(inputs["mask"]))
        kept = mask_array(Image.open(inputs["mask"]), blur) == 0
        assert kept.sum() > 50
        for image in images:
            image = np.asarray(image)
            assert np.array_equal(image[kept], original[kept])
            assert not np.array_equal(image[mask > 0], original[mask > 0])


def test_blend_known_puts_the_kept_latents_back_in_nine_channel_runs(inpaint_model, inputs, tmp_path, monkeypatch):
    """`blend_known` (what AUTOMATIC1111 and ComfyUI's noise mask do with inpainting models): after the last step
    the latents outside the mask are the input's own, sampled with the image's generator; without it (diffusers'
    behaviour, checked above) they are whatever the 9-channel UNet made of them."""
    finals = []
    real_decode = generate.decode
    monkeypatch.setattr(generate, "decode", lambda vae, latents: finals.append(latents) or real_decode(vae, latents))
    for blend in ("false", "true"):
        ours(inpaint_model, tmp_path / blend, "inpaint", "ddim", image=inputs["image"], mask=inputs["mask"],
             strength=1.0, blend_known=blend)
    vae = AutoencoderKL.from_pretrained(inpaint_model / "vae")
    pixels = from_pil(Image.open(inputs["image"]))
    mask = torch.from_numpy(mask_array(Image.open(inputs["mask"]), 0) >= 0.5).float()[None, None]
    kept = latent_mask(mask, finals[0].shape[-2:])[0, 0] == 0
    assert 0 < kept.sum() < kept.numel()
    for i in range(COUNT):
        known = encode(vae, pixels, generators_for([SEED + i]))[0]
        without, blended = finals[i][0], finals[COUNT + i][0]
        assert torch.allclose(blended[:, kept], known[:, kept], atol=1e-5)
        assert (without[:, kept] - known[:, kept]).abs().max() > 0.1
        assert not torch.equal(blended[:, ~kept], known[:, ~kept])
