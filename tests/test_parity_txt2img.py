"""Our txt2img equals diffusers' StableDiffusionPipeline on the same folder, seeds and scheduler settings."""

import numpy as np
import pytest
from PIL import Image

from conftest import as_uint8, generators, make_config, max_pixel_difference
from pipeline.run import generate
from pipeline.engine.schedulers import NOISE, SCHEDULERS, make_scheduler, scheduler_options, serving

TOLERANCE = 2  # out of 255, per pixel, on the uint8 output
LONG_PROMPT = " ".join(["a large red circle on the left, blue background"] * 4)


def ours(tiny_model, tmp_path, **settings):
    """Run the full pipeline (config -> files on disk) and read the written PNGs back."""
    cfg = make_config(tiny_model, tmp_path / "out", **settings)
    paths = list(generate.run(cfg, progress=False))
    return [Image.open(p).convert("RGB") for p in paths]


def theirs(pipe, name, prompt="a red circle", negative_prompt=None, steps=5, guidance_scale=7.5,
           guidance_rescale=0.0, seed=3, num_images=2):
    """The reference run: the same scheduler class from_config with the same options, per-image generators."""
    seeds = [seed + i for i in range(num_images)]
    pipe.scheduler = make_scheduler(name, pipe.original_scheduler_config, {}, seeds)
    assert type(pipe.scheduler) is SCHEDULERS[name].cls
    result = pipe(
        prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        guidance_rescale=guidance_rescale,
        num_images_per_prompt=num_images,
        generator=generators(seed, num_images),
        output_type="np",
    )
    return result.images


def assert_not_trivial(images):
    """Parity would mean little on flat or identical images: require texture and per-seed differences."""
    stack = as_uint8(images).astype(int)
    assert stack.std() > 2, "reference images are nearly flat"
    if len(stack) > 1:
        assert np.abs(stack[0] - stack[1]).max() > 2, "different seeds gave the same image"


@pytest.mark.parametrize("name", list(serving(NOISE)))
def test_every_scheduler_matches_diffusers(name, tiny_model, reference_pipe, tmp_path):
    reference = theirs(reference_pipe, name)
    assert_not_trivial(reference)
    mine = ours(tiny_model, tmp_path, scheduler__name=name, prompt="a red circle", steps=5, seed=3, num_images=2)
    assert max_pixel_difference(mine, reference) <= TOLERANCE


CASES = {
    "negative_prompt": dict(negative_prompt="a blue square"),
    "no_guidance": dict(guidance_scale=1.0),
    "guidance_rescale": dict(guidance_rescale=0.7),
    "long_prompt": dict(prompt=LONG_PROMPT),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", ["pndm", "euler_a", "dpmpp_2m_sde"])
def test_settings_match_diffusers(case, name, tiny_model, reference_pipe, tmp_path):
    settings = CASES[case]
    reference = theirs(reference_pipe, name, **settings)
    assert_not_trivial(reference)
    syntax = {"prompt_syntax": "none"} if case == "long_prompt" else {}  # diffusers cuts at 77 tokens; a1111 does not
    mine = ours(tiny_model, tmp_path, scheduler__name=name, steps=5, seed=3, num_images=2,
                **{"prompt": "a red circle", **settings, **syntax})
    assert max_pixel_difference(mine, reference) <= TOLERANCE


def test_settings_change_the_image(tiny_model, reference_pipe):
    """Each case above must actually change the output, or its parity test proves nothing new."""
    base = as_uint8(theirs(reference_pipe, "pndm"))
    for case, settings in CASES.items():
        changed = as_uint8(theirs(reference_pipe, "pndm", **settings))
        assert np.abs(changed.astype(int) - base).max() > 0, case


def test_image_depends_on_its_seed_alone(tiny_model, tmp_path):
    """Image i of a batch equals a single-image run with seed + i (an ancestral scheduler draws noise)."""
    batch = ours(tiny_model, tmp_path / "a", scheduler__name="euler_a", steps=5, seed=10, num_images=3, batch_size=3)
    single = ours(tiny_model, tmp_path / "b", scheduler__name="euler_a", steps=5, seed=12, num_images=1)
    assert max_pixel_difference(batch[2:], single) <= TOLERANCE


def test_sde_noise_seed_follows_image_seeds():
    """DPM++ SDE's Brownian tree is seeded per image, so its images too depend on their seeds alone."""
    assert scheduler_options("dpmpp_sde", {}, [5, 6])["noise_sampler_seed"] == [5, 6]
    assert "noise_sampler_seed" not in scheduler_options("euler_a", {}, [5, 6])


def test_guidance_distilled_unet_matches_diffusers(tmp_path):
    """A UNet with time_cond_proj_dim (LCM-distilled) takes the guidance scale as an embedding, not CFG."""
    from diffusers import StableDiffusionPipeline

    from pipeline.lab.fixtures.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path / "lcm", time_cond_proj_dim=32)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.original_scheduler_config = dict(pipe.scheduler.config)
    reference = theirs(pipe, "lcm", steps=4, guidance_scale=6.0)
    assert_not_trivial(reference)
    mine = ours(folder, tmp_path, scheduler__name="lcm", steps=4, guidance_scale=6.0, seed=3, num_images=2,
                prompt="a red circle")
    assert max_pixel_difference(mine, reference) <= TOLERANCE
    other_scale = theirs(pipe, "lcm", steps=4, guidance_scale=2.0)
    assert max_pixel_difference(other_scale, reference) > 0, "the guidance embedding had no effect"
