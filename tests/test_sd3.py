"""Stable Diffusion 3 through the one loop: our txt2img equals diffusers' StableDiffusion3Pipeline on tiny SD3 folders
(with T5; SD3.5-shaped without it) for every flow-matching scheduler, within 1/255; the schedulers belong to the
model's kind; the T5 length limit and the UNet-only options are checked before loading."""

import logging
from pathlib import Path

import numpy as np
import torch
import pytest
from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline, StableDiffusion3Pipeline
from PIL import Image

from conftest import generators, make_config, max_pixel_difference
from pipeline.common.errors import UserError
from pipeline.engine.latents import decode, to_pil
from pipeline.engine.schedulers import FLOW, KINDS, NOISE, SCHEDULERS, make_scheduler, resolve, serving
from pipeline.lab.fixtures.tiny_sd3 import build_tiny_sd3
from pipeline.run import generate
from pipeline.variants.base import kept_timesteps

TOLERANCE = 1  # out of 255, per pixel
SEED, COUNT, STEPS, PROMPT, NEGATIVE = 3, 2, 4, "a red circle", "blue"
KINDS_OF_MODEL = {"t5": dict(t5=True, sd35=False), "sd35_no_t5": dict(t5=False, sd35=True)}


@pytest.fixture(scope="module")
def sd3_models(tmp_path_factory) -> dict:
    """A tiny SD3 with its T5, and a tiny SD3.5-shaped one (RMS-normed queries and keys, a dual-attention layer)
    whose model_index.json leaves T5 out."""
    root = tmp_path_factory.mktemp("sd3")
    return {name: build_tiny_sd3(root / name, **kwargs) for name, kwargs in KINDS_OF_MODEL.items()}


def ours(folder, out, name, **overrides):
    """Our images for two seeds in one batch."""
    settings = dict(scheduler__name=name, steps=STEPS, num_images=COUNT, batch_size=COUNT, seed=SEED, prompt=PROMPT)
    cfg = make_config(folder, out, **{**settings, **overrides})
    plan = generate.check(cfg)
    components = generate.load(plan)
    return plan, generate.generate_images(components, cfg, plan.seeds, plan.height, plan.width, progress=False)


def theirs(folder, key, t5: bool, **kwargs):
    """diffusers' images with the same scheduler and one generator per image."""
    parts = {} if t5 else dict(text_encoder_3=None, tokenizer_3=None)
    pipe = StableDiffusion3Pipeline.from_pretrained(folder, **parts)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(key, dict(pipe.scheduler.config), {}, [SEED + i for i in range(COUNT)])
    return pipe(PROMPT, num_inference_steps=STEPS, num_images_per_prompt=COUNT, generator=generators(SEED, COUNT),
                output_type="np", **kwargs).images


@pytest.mark.parametrize("model", list(KINDS_OF_MODEL))
@pytest.mark.parametrize("name", list(serving(FLOW)))
def test_txt2img_equals_diffusers(sd3_models, tmp_path, model, name):
    """Guided, with a negative prompt: every flow-matching scheduler."""
    plan, images = ours(sd3_models[model], tmp_path, name, negative_prompt=NEGATIVE, guidance_scale=5.0)
    assert (plan.width, plan.height) == (32, 32)  # the transformer's sample_size x the VAE factor
    reference = theirs(sd3_models[model], name, KINDS_OF_MODEL[model]["t5"], negative_prompt=NEGATIVE,
                       guidance_scale=5.0)
    assert max_pixel_difference(images, reference) <= TOLERANCE


def test_unguided_equals_diffusers(sd3_models, tmp_path):
    """guidance_scale 1: one pass per step, no negative prompt."""
    _, images = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=1.0)
    reference = theirs(sd3_models["t5"], "flow_euler", True, guidance_scale=1.0)
    assert max_pixel_difference(images, reference) <= TOLERANCE


def test_t5_and_the_prompt_change_the_image(sd3_models, tmp_path):
    """The parity above proves something: the prompt changes the image, and so does T5's part of it alone (a word
    past CLIP's 77 tokens reaches T5 only)."""
    _, plain = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0)
    _, other = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, prompt="a blue square")
    assert max_pixel_difference(plain, other) > 10
    long = " ".join(["red"] * 80)
    _, a = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, prompt=f"{long} circle",
                prompt_syntax="none")
    _, b = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, prompt=f"{long} square",
                prompt_syntax="none")
    assert max_pixel_difference(a, b) > 0


def test_euler_means_the_flow_euler_for_a_flow_model():
    """A1111 and Forge show one 'Euler' for both kinds; the registry picks by the model's kind."""
    assert resolve("Euler", FLOW) == "flow_euler" and resolve("Euler", NOISE) == "euler"
    assert resolve("heun", FLOW) == "flow_heun"
    assert {spec.serves for spec in SCHEDULERS.values()} == set(KINDS)
    assert all(SCHEDULERS[key].serves == FLOW for key in serving(FLOW))


def test_a_noise_scheduler_on_a_flow_model_is_one_sentence(sd3_models, tmp_path):
    cfg = make_config(sd3_models["t5"], tmp_path, scheduler__name="PLMS")
    with pytest.raises(UserError) as err:
        generate.check(cfg)
    message = str(err.value)
    assert "scheduler.name 'PLMS' is a sampler for noise-prediction" in message
    assert "flow_euler (Euler)" in message and "flow_heun (Heun)" in message and message.count(".") >= 1

def test_a_flow_scheduler_on_a_unet_model_is_one_sentence(tiny_model, tmp_path):
    with pytest.raises(UserError, match="'flow_heun' is a sampler for flow matching .* takes: pndm \\(PLMS\\)"):
        generate.check(make_config(tiny_model, tmp_path, scheduler__name="flow_heun"))


def test_unet_only_performance_options_are_refused(sd3_models, tmp_path):
    cfg = make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler", performance__token_merging=0.5)
    with pytest.raises(UserError, match="performance.token_merging works on a UNet's blocks; .* SD3Transformer2DModel"):
        generate.check(cfg)


def test_t5_length_is_a_key_with_a_warning_past_it(sd3_models, tmp_path, caplog):
    """max_sequence_length sets T5's tokens (the states grow with it); a longer prompt is cut with a warning."""
    cfg = make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler", max_sequence_length=8,
                      prompt="a red circle on the left")
    plan = generate.check(cfg)
    components = generate.load(plan)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        conditioning = components.family.encode(components, cfg, 1, True, (32, 32))
    assert conditioning.cond["hidden_states"].shape[1] == 77 + 8
    count = len(components.parts["tokenizer_3"](cfg.prompt).input_ids)
    assert count > 8 and f"prompt is {count} T5 tokens; the T5 encoder reads the first 8" in caplog.text
    assert np.isfinite(conditioning.cond["hidden_states"].numpy()).all()


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 32x32 noise picture."""
    path = tmp_path_factory.mktemp("sd3_inputs") / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def mask(tmp_path_factory):
    """A mask over part of the picture's right half."""
    path = tmp_path_factory.mktemp("sd3_inputs") / "mask.png"
    array = np.zeros((32, 32), np.uint8)
    array[4:28, 16:30] = 255
    Image.fromarray(array, mode="L").save(path)
    return path


@pytest.mark.parametrize("name", ["flow_euler", "flow_heun"])
@pytest.mark.parametrize("strength", [0.7, 0.5])
def test_img2img_equals_diffusers(sd3_models, tmp_path, picture, name, strength):
    """The image encoded per generator, less the VAE's shift, noised by scale_noise at the first kept sigma. (diffusers'
    SD3 img2img encodes image[i] for generator i, so it is given the picture once per image.)"""
    settings = dict(negative_prompt=NEGATIVE, guidance_scale=5.0, strength=strength)
    _, images = ours(sd3_models["t5"], tmp_path, name, task="img2img", image=str(picture), steps=5, **settings)
    pipe = StableDiffusion3Img2ImgPipeline.from_pretrained(sd3_models["t5"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(name, dict(pipe.scheduler.config), {}, [SEED + i for i in range(COUNT)])
    reference = pipe([PROMPT] * COUNT, image=[Image.open(picture)] * COUNT, num_inference_steps=5,
                     negative_prompt=[NEGATIVE] * COUNT, guidance_scale=5.0, strength=strength,
                     generator=generators(SEED, COUNT), output_type="np").images
    assert max_pixel_difference(images, reference) <= TOLERANCE


def test_flow_img2img_rounds_the_skipped_steps_down():
    """SD3's and FLUX's get_timesteps skip int(steps - steps x strength) steps; SD's keep int(steps x strength):
    at 5 steps and strength 0.7 a flow model runs 4 steps, a UNet model 3."""
    flow = make_scheduler("flow_euler", {"shift": 3.0}, {}, [0])
    noise = make_scheduler("euler", {}, {}, [0])
    flow.set_timesteps(5), noise.set_timesteps(5)
    assert len(kept_timesteps(flow, 5, 0.7, FLOW)) == 4 and len(kept_timesteps(noise, 5, 0.7)) == 3


@pytest.mark.parametrize("name", ["flow_euler", "flow_heun"])
@pytest.mark.parametrize("strength", [0.7, 1.0])
def test_inpaint_equals_diffusers_latents(sd3_models, tmp_path, picture, mask, name, strength):
    """A 16-channel transformer gets the known latents, noised by scale_noise to the next sigma, blended back after
    every step. diffusers' SD3 inpaint decodes without the VAE's shift (its other SD3 pipelines add it; diffusers
    issue 13611, item 1), so its latents are compared, decoded as its txt2img decodes. One image: its per-image
    encode uses the first generator for every image, where ours gives each image its own."""
    settings = dict(guidance_scale=5.0, strength=strength, steps=5, num_images=1, batch_size=1)
    _, images = ours(sd3_models["t5"], tmp_path, name, task="inpaint", image=str(picture), mask=str(mask), **settings)
    pipe = StableDiffusion3InpaintPipeline.from_pretrained(sd3_models["t5"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(name, dict(pipe.scheduler.config), {}, [SEED])
    latents = pipe(PROMPT, image=Image.open(picture), mask_image=Image.open(mask), num_inference_steps=5,
                   guidance_scale=5.0, strength=strength, generator=generators(SEED, 1), output_type="latent").images
    reference = to_pil(decode(pipe.vae, latents))
    assert max_pixel_difference(images, reference) <= TOLERANCE
    # the blending is what makes it inpaint: without it, the same draws would give img2img's image
    _, plain = ours(sd3_models["t5"], tmp_path, name, task="img2img", image=str(picture), **settings)
    assert max_pixel_difference(images, plain) > 10


SLG = dict(skip_layer_guidance__layers="[1]", skip_layer_guidance__scale=2.8, skip_layer_guidance__start=0.01,
           skip_layer_guidance__stop=0.6)


def test_skip_layer_guidance_equals_diffusers(sd3_models, tmp_path):
    """SD3.5's skip-layer guidance on the steps strictly inside its window (steps 1 and 2 of 5 here), and it changes
    the image."""
    settings = dict(negative_prompt=NEGATIVE, guidance_scale=5.0, steps=5)
    _, images = ours(sd3_models["sd35_no_t5"], tmp_path, "Euler", **settings, **SLG)
    _, plain = ours(sd3_models["sd35_no_t5"], tmp_path, "Euler", **settings)
    assert max_pixel_difference(images, plain) > 10
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_models["sd35_no_t5"], text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=5, guidance_scale=5.0,
                     num_images_per_prompt=COUNT, generator=generators(SEED, COUNT), output_type="np",
                     skip_guidance_layers=[1], skip_layer_guidance_scale=2.8, skip_layer_guidance_start=0.01,
                     skip_layer_guidance_stop=0.6).images
    assert max_pixel_difference(images, reference) <= TOLERANCE


@pytest.mark.parametrize("key,value,message", [
    ("layers", "[2]", "block numbers from 0 to 1"), ("start", 0.7, "0 <= start < stop <= 1"),
    ("scale", -1.0, "a number >= 0")])
def test_skip_layer_guidance_is_checked_before_loading(sd3_models, tmp_path, key, value, message):
    settings = {**SLG, f"skip_layer_guidance__{key}": value}
    with pytest.raises(UserError, match=message.replace("(", "\\(")):
        generate.check(make_config(sd3_models["sd35_no_t5"], tmp_path, scheduler__name="Euler", **settings))


def test_skip_layer_guidance_is_refused_on_a_unet(tiny_model, tmp_path):
    with pytest.raises(UserError, match="applies to SD3's transformer; this model's denoiser is a UNet2DCondition"):
        generate.check(make_config(tiny_model, tmp_path, **SLG))


def test_t5_reads_a1111_weights_as_emphasis(sd3_models, tmp_path):
    """A weight of 1 is the plain prompt (diffusers' ids); (red:1.5) scales the states of red's tokens 1.5 times as
    much as the others' (A1111's "Original" emphasis: all scaled back to the mean), and changes the image."""
    from pipeline.text.t5 import encode_t5, weighted_ids

    cfg = make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler")
    components = generate.load(generate.check(cfg))
    tokenizer, encoder = components.parts["tokenizer_3"], components.parts["text_encoder_3"]
    encode = lambda text: encode_t5(tokenizer, encoder, [text], "cpu", "a1111", 32, ["prompt"])[0]  # noqa: E731
    assert torch.equal(encode("a (red:1.0) circle"), encode("a red circle"))
    ids, weights, _ = weighted_ids(tokenizer, "a (red:1.5) circle", "a1111", 32)
    plain = encoder(torch.tensor([ids]))[0]
    ratio = (encode("a (red:1.5) circle") / plain)[0].mean(-1)
    heavy = torch.tensor(weights) == 1.5
    assert heavy.sum() == len(tokenizer("red", add_special_tokens=False).input_ids)
    assert torch.allclose(ratio[heavy], 1.5 * ratio[~heavy].mean(), rtol=1e-4)
    _, light = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, prompt="a red circle")
    _, strong = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, prompt="a (red:1.8) circle")
    assert max_pixel_difference(light, strong) > 0


def test_t5_can_be_left_unloaded(sd3_models, tmp_path):
    """model.without: [t5] runs a full SD3 folder as diffusers does with text_encoder_3=None (its part zeros), and
    never loads T5; a part that is not optional, or a family without one, is one sentence."""
    cfg = make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler", **{"model.without": "[t5]"})
    components = generate.load(generate.check(cfg))
    assert "text_encoder_3" not in components.parts and "tokenizer_3" not in components.parts
    _, images = ours(sd3_models["t5"], tmp_path, "Euler", guidance_scale=5.0, **{"model.without": "[t5]"})
    assert max_pixel_difference(images, theirs(sd3_models["t5"], "flow_euler", False, guidance_scale=5.0)) <= TOLERANCE
    with pytest.raises(UserError, match="model.without names parts a Stable Diffusion 3 model cannot leave out: vae "
                                        r"\(it may leave out: t5\)"):
        generate.check(make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler", **{"model.without": "[vae]"}))


def test_without_on_a_family_with_nothing_optional(tiny_model, tmp_path):
    with pytest.raises(UserError, match=r"cannot leave out: t5 \(it may leave out: none\)"):
        generate.check(make_config(tiny_model, tmp_path, **{"model.without": "[t5]"}))


def test_the_noise_tool_follows_a_flow_models_path(sd3_models, tmp_path):
    """scripts/latents.py noise on SD3: sigma = the level shifted by the model's shift (3), signal 1 - sigma."""
    from pipeline.tools import latent_space as latent_tools

    inputs = Path(__file__).resolve().parents[1] / "configs" / "inputs"
    cfg = latent_tools.load(None, [f"model.path={sd3_models['t5']}", f"output_dir={tmp_path}", "model.dtype=float32",
                                   f"image={inputs / 'shapes-red-circle.png'}", "latents.noise_levels=[0, 0.5, 1]"])
    shares = list(latent_tools.run("noise", cfg).numbers.values())
    assert shares == [1.0, pytest.approx(0.25), 0.0]  # sigma(0.5) = 3 x 0.5 / (1 + 2 x 0.5) = 0.75


def test_cpu_offload_takes_t5_along(sd3_models, tmp_path):
    """performance.cpu_offload's hooks (accelerate's, as diffusers' model offload) cover every text encoder, T5
    included, then the transformer and the VAE (run here with the CPU standing in for the GPU)."""
    from pipeline.speed.performance import offload

    components = generate.load(generate.check(make_config(sd3_models["t5"], tmp_path, scheduler__name="Euler")))
    offload(components)
    hooked = [name for name, part in components.parts.items() if hasattr(part, "_hf_hook")]
    assert sorted(hooked) == ["text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae"]
