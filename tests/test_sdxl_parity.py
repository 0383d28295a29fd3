"""Our SDXL runs (txt2img, img2img, inpaint with 4- and 9-channel UNets, the refiner alone, base + refiner) equal
diffusers' SDXL pipelines on the same tiny folders, seeds and schedulers, within 1/255 per pixel."""

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image

from conftest import as_uint8, generators, make_config, max_pixel_difference
from sdxl_fixtures import SIZE
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_sdxl import HIDDEN
from pipeline.run import generate

TOLERANCE = 1  # out of 255, per pixel, on the uint8 output
SCHEDULERS = ["pndm", "lms", "ddim", "euler", "euler_a", "dpmpp_2m_karras"]
SEED, COUNT, STEPS, PROMPT = 3, 2, 5, "a red circle"
PAIR_STEPS, SWITCH = 6, 0.8  # base + refiner: the refiner runs the last 2 of 6 steps (timesteps 167, 1)
SIZES = dict(original_size=(48, 40), crops_coords_top_left=(4, 8), target_size=(24, 40))
NEGATIVE_SIZES = dict(negative_original_size=(16, 24), negative_crops_coords_top_left=(2, 0),
                      negative_target_size=(32, 16))
CASES = {
    "guidance_rescale": dict(guidance_rescale=0.7),
    "sizes": SIZES,
    "negative_sizes": NEGATIVE_SIZES,
    "negative_sizes_default_crops": dict(**SIZES, negative_original_size=(16, 24), negative_target_size=(32, 16)),
    "negative_prompt": dict(negative_prompt="a blue square", **SIZES, **NEGATIVE_SIZES),
}
# every scheduler on a 4-channel UNet from a noised image and on a 9-channel one from noise, one on the other two
INPAINT_CASES = [*((name, 4, 0.7) for name in SCHEDULERS), *((name, 9, 1.0) for name in SCHEDULERS),
                 ("euler_a", 4, 1.0), ("euler_a", 9, 0.7)]
AESTHETIC = dict(aesthetic_score=8.0, negative_aesthetic_score=1.0)

_pipes = {}


def reference_pipe(cls, folder):
    """One diffusers pipeline per class and folder (no watermark), its original scheduler config kept aside."""
    key = (cls, str(folder))
    if key not in _pipes:
        pipe = cls.from_pretrained(folder, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(pipe.scheduler.config)
        _pipes[key] = pipe
    return _pipes[key]


def theirs(pipe, name, seed=SEED, count=COUNT, **kwargs) -> np.ndarray:
    """The reference call: the scheduler built as ours is, one generator per image seeded seed + i."""
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, [seed + i for i in range(count)])
    settings = {"prompt": PROMPT, "num_inference_steps": STEPS, "guidance_scale": 7.5, **kwargs}
    return pipe(num_images_per_prompt=count, generator=generators(seed, count), output_type="np", **settings).images


def theirs_one_by_one(pipe, name, **kwargs) -> np.ndarray:
    """Single-image diffusers runs with seeds SEED + i, stacked: what our image i equals where diffusers' batch ties
    images together (its inpaint encodes the one input image with generator[0] only)."""
    return np.concatenate([theirs(pipe, name, seed=SEED + i, count=1, **kwargs) for i in range(COUNT)])


def theirs_pair(base, refiner, name, refiner_only=None, **kwargs) -> np.ndarray:
    """diffusers' ensemble of experts: the base stops at SWITCH and hands its latents to the refiner, with the
    same generator list object going on from where the base left it; kwargs go to both, refiner_only to it alone."""
    seeds = [SEED + i for i in range(COUNT)]
    gens = generators(SEED, COUNT)
    base.scheduler = make_scheduler(name, base.original_scheduler_config, {}, seeds)
    refiner.scheduler = make_scheduler(name, refiner.original_scheduler_config, {}, seeds)
    common = dict(prompt=PROMPT, num_inference_steps=PAIR_STEPS, guidance_scale=7.5, num_images_per_prompt=COUNT,
                  generator=gens, **kwargs)
    latents = base(height=SIZE, width=SIZE, denoising_end=SWITCH, output_type="latent", **common).images
    return refiner(image=latents, denoising_start=SWITCH, output_type="np", **common, **(refiner_only or {})).images


def ours(model, tmp_path, task, name, **settings) -> list[Image.Image]:
    """Our full run (config -> PNG files) read back; tuples become the config's [a, b] lists."""
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    settings.setdefault("steps", STEPS)
    cfg = make_config(model, tmp_path / "out", task=task, scheduler__name=name, prompt=PROMPT, seed=SEED,
                      num_images=COUNT, **settings)
    return [Image.open(p).convert("RGB") for p in generate.run(cfg, progress=False)]


def assert_parity(mine, reference) -> None:
    """Non-trivial reference images (texture, per-seed differences) that ours match within TOLERANCE."""
    stack = as_uint8(reference).astype(int)
    assert stack.std() > 2 and np.abs(stack[0] - stack[1]).max() > 2, "reference images are trivial"
    assert max_pixel_difference(mine, reference) <= TOLERANCE


@pytest.mark.parametrize("name", SCHEDULERS)
def test_txt2img(name, sdxl_base, tmp_path):
    reference = theirs(reference_pipe(StableDiffusionXLPipeline, sdxl_base), name, height=SIZE, width=SIZE)
    assert_parity(ours(sdxl_base, tmp_path, "txt2img", name, height=SIZE, width=SIZE), reference)


def test_settings_change_the_image(sdxl_base, sdxl_refiner, sdxl_inputs):
    """Each setting tested below changes diffusers' image, or its parity test would prove nothing new."""
    base = reference_pipe(StableDiffusionXLPipeline, sdxl_base)
    plain = theirs(base, "euler", height=SIZE, width=SIZE)
    for case, settings in CASES.items():
        assert max_pixel_difference(theirs(base, "euler", height=SIZE, width=SIZE, **settings), plain) > 2, case
    refiner = reference_pipe(StableDiffusionXLImg2ImgPipeline, sdxl_refiner)
    image = Image.open(sdxl_inputs["image"])
    defaults = theirs(refiner, "euler", image=image, strength=0.6)
    for case, settings in {"sizes": SIZES, "scores": AESTHETIC}.items():
        assert max_pixel_difference(theirs(refiner, "euler", image=image, strength=0.6, **settings), defaults) > 2, case
    alone = theirs(base, "euler", height=SIZE, width=SIZE, num_inference_steps=PAIR_STEPS)
    assert max_pixel_difference(theirs_pair(base, refiner, "euler"), alone) > 2, "the refiner did not change the image"


@pytest.mark.parametrize("case", list(CASES))
def test_settings(case, sdxl_base, tmp_path):
    """One image per diffusers call: its txt2img joins the negative and positive time ids before repeating them per
    image, so in a batch of 2 image 0's positive half gets the negative ids (pipeline_stable_diffusion_xl.py)."""
    settings = CASES[case]
    reference = theirs_one_by_one(reference_pipe(StableDiffusionXLPipeline, sdxl_base), "euler", height=SIZE,
                                  width=SIZE, **settings)
    assert_parity(ours(sdxl_base, tmp_path, "txt2img", "euler", height=SIZE, width=SIZE, **settings), reference)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_img2img(name, sdxl_base, sdxl_inputs, tmp_path):
    pipe = reference_pipe(StableDiffusionXLImg2ImgPipeline, sdxl_base)
    reference = theirs(pipe, name, image=Image.open(sdxl_inputs["image"]), strength=0.6)
    assert_parity(ours(sdxl_base, tmp_path, "img2img", name, image=sdxl_inputs["image"], strength=0.6), reference)


@pytest.mark.parametrize("settings", [{}, AESTHETIC, SIZES], ids=["defaults", "scores", "sizes"])
def test_refiner_img2img(settings, sdxl_refiner, sdxl_inputs, tmp_path):
    """The refiner alone as an img2img model: text_encoder_2 only, the aesthetic score among its time ids; diffusers'
    img2img defaults the negative sizes to the positive ones but the negative crop to (0, 0)."""
    pipe = reference_pipe(StableDiffusionXLImg2ImgPipeline, sdxl_refiner)
    reference = theirs(pipe, "euler_a", image=Image.open(sdxl_inputs["image"]), strength=0.6, **settings)
    mine = ours(sdxl_refiner, tmp_path, "img2img", "euler_a", image=sdxl_inputs["image"], strength=0.6, **settings)
    assert_parity(mine, reference)


@pytest.mark.parametrize("name, channels, strength", INPAINT_CASES)
def test_inpaint(name, channels, strength, sdxl_base, sdxl_inpaint, sdxl_inputs, tmp_path):
    model = sdxl_inpaint if channels == 9 else sdxl_base
    pipe = reference_pipe(StableDiffusionXLInpaintPipeline, model)
    reference = theirs_one_by_one(pipe, name, image=Image.open(sdxl_inputs["image"]),
                                  mask_image=Image.open(sdxl_inputs["mask"]), strength=strength, height=SIZE,
                                  width=SIZE)  # diffusers' SDXL inpaint makes 64x64 images (the UNet's size) else
    mine = ours(model, tmp_path, "inpaint", name, image=sdxl_inputs["image"], mask=sdxl_inputs["mask"],
                strength=strength)
    assert_parity(mine, reference)


@pytest.fixture
def unet_timesteps(monkeypatch) -> list[tuple[str, float]]:
    """Every UNet call's (stage, timestep), the stage told by the UNet's cross-attention width."""
    calls = []
    real = UNet2DConditionModel.forward

    def forward(self, sample, timestep, *args, **kwargs):
        stage = "refiner" if self.config.cross_attention_dim == HIDDEN else "base"
        calls.append((stage, float(torch.as_tensor(timestep).flatten()[0])))
        return real(self, sample, timestep, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", forward)
    return calls


def steps_run(calls: list) -> list:
    """The calls with repeats in a row folded (a step may call the UNet once or per guidance half)."""
    return [call for i, call in enumerate(calls) if i == 0 or call != calls[i - 1]]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_base_and_refiner(name, sdxl_base, sdxl_refiner, tmp_path, unet_timesteps):
    base = reference_pipe(StableDiffusionXLPipeline, sdxl_base)
    refiner = reference_pipe(StableDiffusionXLImg2ImgPipeline, sdxl_refiner)
    reference = theirs_pair(base, refiner, name)
    their_steps = steps_run(unet_timesteps)
    assert {stage for stage, _ in their_steps} == {"base", "refiner"}
    unet_timesteps.clear()
    mine = ours(sdxl_base, tmp_path, "txt2img", name, height=SIZE, width=SIZE, steps=PAIR_STEPS, batch_size=COUNT,
                refiner__path=sdxl_refiner, refiner__switch_at=SWITCH)
    assert steps_run(unet_timesteps) == their_steps
    assert_parity(mine, reference)


def test_base_and_refiner_settings(sdxl_base, sdxl_refiner, tmp_path):
    """Sizes and the negative prompt reach both stages, the aesthetic scores the refiner."""
    base = reference_pipe(StableDiffusionXLPipeline, sdxl_base)
    refiner = reference_pipe(StableDiffusionXLImg2ImgPipeline, sdxl_refiner)
    settings = dict(original_size=(48, 40), target_size=(24, 40), negative_prompt="a blue square")
    reference = theirs_pair(base, refiner, "euler_a", refiner_only=AESTHETIC, **settings)
    assert max_pixel_difference(reference, theirs_pair(base, refiner, "euler_a")) > 2
    mine = ours(sdxl_base, tmp_path, "txt2img", "euler_a", height=SIZE, width=SIZE, steps=PAIR_STEPS,
                refiner__path=sdxl_refiner, refiner__switch_at=SWITCH, **settings, **AESTHETIC)
    assert_parity(mine, reference)
