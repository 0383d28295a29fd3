"""LoRA on the flow families through diffusers' own loaders: diffusers-layout files on SD3 and FLUX and kohya-layout
files on FLUX equal pipe.load_lora_weights + set_adapters on the same tiny models within 1/255, at full and half
weight, and change the image."""

import pytest
from diffusers import FluxPipeline, StableDiffusion3Pipeline

from conftest import generators, make_config, max_pixel_difference
from pipeline.common.errors import UserError
from pipeline.lab.fixtures.flow_loras import make_flow_lora, make_kohya_flux_lora
from pipeline.lab.fixtures.tiny_flux import build_tiny_flux
from pipeline.lab.fixtures.tiny_sd3 import build_tiny_sd3
from pipeline.run import generate

SEED, STEPS, PROMPT = 2, 3, "a red circle"
PIPES = {"sd3": StableDiffusion3Pipeline, "flux": FluxPipeline}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Tiny SD3 and FLUX-dev folders and their LoRA files."""
    root = tmp_path_factory.mktemp("flow_lora")
    sd3, flux = build_tiny_sd3(root / "sd3"), build_tiny_flux(root / "flux")
    return {"sd3": (sd3, make_flow_lora(sd3, root / "sd3.safetensors", "StableDiffusion3Pipeline", scale=4.0)),
            "flux": (flux, make_flow_lora(flux, root / "flux.safetensors", "FluxPipeline", scale=4.0)),
            "flux_kohya": (flux, make_kohya_flux_lora(flux, root / "flux_kohya.safetensors"))}


def ours(model, out, loras="[]"):
    cfg = make_config(model, out, scheduler__name="Euler", steps=STEPS, seed=SEED, prompt=PROMPT, loras=loras,
                      guidance_scale=4.0, height=32, width=32)
    plan = generate.check(cfg)
    return generate.generate_images(generate.load(plan), cfg, [SEED], plan.height, plan.width, progress=False)


@pytest.mark.parametrize("kind", ["sd3", "flux", "flux_kohya"])
@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_lora_equals_diffusers(files, tmp_path, kind, weight):
    model, lora = files[kind]
    images = ours(model, tmp_path, f"[{{path: {lora}, weight: {weight}}}]")
    assert max_pixel_difference(images, ours(model, tmp_path)) > 0  # the LoRA changes the image
    pipe = PIPES[kind.split("_")[0]].from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(lora, adapter_name="a")
    pipe.set_adapters(["a"], [weight])
    size = {"height": 32, "width": 32}
    reference = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=4.0, generator=generators(SEED, 1),
                     output_type="np", **size).images
    assert max_pixel_difference(images, reference) <= 1


def test_a_flux_lora_on_sd3_is_one_sentence(files, tmp_path):
    model, _ = files["sd3"]
    _, lora = files["flux_kohya"]
    with pytest.raises(UserError, match="LoRA .*flux_kohya.safetensors"):
        generate.check(make_config(model, tmp_path, scheduler__name="Euler", loras=f"[{{path: {lora}}}]"))
