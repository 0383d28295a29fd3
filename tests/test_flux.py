"""FLUX.1 through the one loop: our txt2img, img2img and inpaint equal diffusers' FluxPipeline, FluxImg2ImgPipeline
and FluxInpaintPipeline on tiny dev-like (guidance-distilled, shift by resolution) and schnell-like folders, with
and without true CFG, within 1/255; the keys only FLUX reads are refused elsewhere, and the schedule a scheduler
cannot follow is one sentence."""

import numpy as np
import pytest
from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline, FluxPipeline
from PIL import Image

from conftest import generators, make_config, max_pixel_difference
from pipeline.common.errors import UserError
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.tiny_flux import build_tiny_flux
from pipeline.lab.fixtures.tiny_sd3 import build_tiny_sd3
from pipeline.models.transformer_call import pack, unpack
from pipeline.run import generate

TOLERANCE = 1  # out of 255, per pixel
SEED, STEPS, PROMPT, NEGATIVE = 3, 4, "a red circle", "blue"
HEIGHT, WIDTH = 32, 48  # not square: rows and columns of the patch ids must not be swapped
PIPES = {"txt2img": FluxPipeline, "img2img": FluxImg2ImgPipeline, "inpaint": FluxInpaintPipeline}


@pytest.fixture(scope="module")
def flux_models(tmp_path_factory) -> dict:
    """A tiny FLUX.1-dev-like and a schnell-like folder."""
    root = tmp_path_factory.mktemp("flux")
    return {"dev": build_tiny_flux(root / "dev", dev=True), "schnell": build_tiny_flux(root / "schnell", dev=False)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A 48x32 noise picture and a mask over its middle."""
    folder = tmp_path_factory.mktemp("flux_inputs")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(
        folder / "image.png")
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[4:28, 16:40] = 255
    Image.fromarray(mask, mode="L").save(folder / "mask.png")
    return {"image": folder / "image.png", "mask": folder / "mask.png"}


def ours(folder, out, count, **overrides):
    """Our images for `count` seeds in one batch."""
    settings = dict(scheduler__name="Euler", steps=STEPS, num_images=count, batch_size=count, seed=SEED,
                    prompt=PROMPT, negative_prompt=NEGATIVE, guidance_scale=3.5, height=HEIGHT, width=WIDTH)
    cfg = make_config(folder, out, **{**settings, **overrides})
    plan = generate.check(cfg)
    components = generate.load(plan)
    return generate.generate_images(components, cfg, plan.seeds, plan.height, plan.width, progress=False)


def theirs(folder, task, count, name="flow_euler", **kwargs):
    """diffusers' images with the same scheduler and one generator per image."""
    pipe = PIPES[task].from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(name, dict(pipe.scheduler.config), {}, [SEED + i for i in range(count)])
    return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=3.5, height=HEIGHT,
                width=WIDTH, num_images_per_prompt=count, generator=generators(SEED, count), output_type="np",
                **kwargs).images


@pytest.mark.parametrize("model,true_cfg,name", [
    ("dev", 1.0, "flow_euler"), ("dev", 4.0, "flow_euler"),
    ("schnell", 1.0, "flow_euler"), ("schnell", 4.0, "flow_euler_karras")])
def test_txt2img_equals_diffusers(flux_models, tmp_path, model, true_cfg, name):
    """One pass per step with the distilled guidance (dev) or none (schnell); two with true CFG."""
    images = ours(flux_models[model], tmp_path, 2, true_cfg_scale=true_cfg, scheduler__name=name)
    reference = theirs(flux_models[model], "txt2img", 2, name, true_cfg_scale=true_cfg)
    assert max_pixel_difference(images, reference) <= TOLERANCE


@pytest.mark.parametrize("name", ["flow_dpmpp_2m", "flow_unipc"])
def test_flow_sigma_schedulers_equal_diffusers(flux_models, tmp_path, name):
    """DPM++ 2M and UniPC with flow sigmas, the model's shift and FLUX-dev's resolution shift (mu only: they make
    their own sigmas). On schnell, whose scheduler does not shift by resolution, FluxPipeline still hands them a mu
    and DPM-Solver asserts; ours hands none, so they run (checked to give finite, different images)."""
    images = ours(flux_models["dev"], tmp_path, 2, scheduler__name=name)
    assert max_pixel_difference(images, theirs(flux_models["dev"], "txt2img", 2, name)) <= TOLERANCE
    schnell = ours(flux_models["schnell"], tmp_path, 1, scheduler__name=name)
    assert max_pixel_difference(schnell, ours(flux_models["schnell"], tmp_path, 1)) > 0


@pytest.mark.parametrize("task", ["img2img", "inpaint"])
@pytest.mark.parametrize("strength", [0.7, 1.0])
@pytest.mark.parametrize("true_cfg", [1.0, 4.0])
def test_img2img_and_inpaint_equal_diffusers(flux_models, tmp_path, inputs, task, strength, true_cfg):
    """One image: diffusers' FLUX encodes the picture with the first generator for every image, ours gives each
    image its own."""
    files = {"image": str(inputs["image"]), **({"mask": str(inputs["mask"])} if task == "inpaint" else {})}
    images = ours(flux_models["dev"], tmp_path, 1, task=task, strength=strength, true_cfg_scale=true_cfg, **files)
    pictures = {"image": Image.open(inputs["image"])}
    if task == "inpaint":
        pictures["mask_image"] = Image.open(inputs["mask"])
    reference = theirs(flux_models["dev"], task, 1, strength=strength, true_cfg_scale=true_cfg, **pictures)
    assert max_pixel_difference(images, reference) <= TOLERANCE


def test_the_guidances_change_the_image(flux_models, tmp_path):
    """The parity proves something: the distilled guidance input, true CFG and the prompt each change the image."""
    plain = ours(flux_models["dev"], tmp_path, 1)
    assert max_pixel_difference(plain, ours(flux_models["dev"], tmp_path, 1, guidance_scale=1.5)) > 0
    assert max_pixel_difference(plain, ours(flux_models["dev"], tmp_path, 1, true_cfg_scale=4.0)) > 10
    assert max_pixel_difference(plain, ours(flux_models["dev"], tmp_path, 1, prompt="a blue square")) > 0


def test_packing_round_trips():
    latents = np.random.default_rng(0).standard_normal((2, 16, 4, 6)).astype(np.float32)
    import torch

    tokens = pack(torch.from_numpy(latents))
    assert tokens.shape == (2, 6, 64) and np.array_equal(unpack(tokens, 4, 6).numpy(), latents)


def test_sizes_are_multiples_of_the_patched_factor(flux_models, tmp_path):
    with pytest.raises(UserError, match="height must be a positive multiple of 4 .the VAE factor x the 2x2 patches"):
        ours(flux_models["dev"], tmp_path, 1, height=34)


def test_heun_cannot_follow_flux_schedule(flux_models, tmp_path):
    """FlowMatchHeunDiscreteScheduler takes neither sigmas nor mu (diffusers' FluxPipeline fails with it too)."""
    with pytest.raises(UserError, match="FlowMatchHeunDiscreteScheduler cannot follow this model's schedule: its "
                                        "set_timesteps takes no mu or sigmas"):
        ours(flux_models["dev"], tmp_path, 1, scheduler__name="Heun")


@pytest.mark.parametrize("key,value,message", [
    ("true_cfg_scale", 2.0, "true_cfg_scale is FLUX's classifier-free guidance; Stable Diffusion 3 models guide"),
    ("max_sequence_length", 600, "max_sequence_length must be an integer from 1 to 512"),
])
def test_flux_keys_elsewhere_are_refused(tmp_path, key, value, message):
    model = build_tiny_sd3(tmp_path / "sd3")
    with pytest.raises(UserError, match=message):
        generate.check(make_config(model, tmp_path, scheduler__name="Euler", **{key: value}))


def test_t5_length_and_clip_skip_on_models_without_them(flux_models, tiny_model, tmp_path):
    with pytest.raises(UserError, match="max_sequence_length sets a T5 encoder's tokens; Stable Diffusion 1.x"):
        generate.check(make_config(tiny_model, tmp_path, max_sequence_length=64))
    with pytest.raises(UserError, match="clip_skip changes nothing for FLUX.1 models"):
        generate.check(make_config(flux_models["dev"], tmp_path, scheduler__name="Euler", clip_skip=2))


def test_sequential_offload_keeps_the_image(flux_models, tmp_path):
    """performance.sequential_offload's hooks (accelerate's cpu_offload on every model, as diffusers' sequential
    offload) leave every weight off the run's device until its layer runs and change nothing in the image (the CPU
    stands in for the GPU here; on the CPU the option itself is refused)."""
    from pipeline.speed.performance import offload_layers

    cfg = make_config(flux_models["dev"], tmp_path, scheduler__name="Euler", steps=2, height=HEIGHT, width=WIDTH,
                      prompt=PROMPT)
    plan = generate.check(cfg)
    components = generate.load(plan)
    before = generate.generate_images(components, cfg, plan.seeds, plan.height, plan.width, progress=False)
    offload_layers(components)
    assert {p.device.type for p in components.unet.parameters()} == {"meta"}  # held by the hooks, on the CPU
    after = generate.generate_images(components, cfg, plan.seeds, plan.height, plan.width, progress=False)
    assert max_pixel_difference(np.asarray(before[0]), np.asarray(after[0])) == 0
