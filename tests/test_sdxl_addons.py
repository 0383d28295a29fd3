"""SDXL add-ons: LoRA files (diffusers and kohya layouts, both text encoders) and textual-inversion embeddings
(clip_l and clip_g vectors) equal diffusers' StableDiffusionXLPipeline loading the same files, within 1/255 per
pixel; a LoRA or an embedding of the other family is one sentence before loading."""

import pytest
from diffusers import StableDiffusionXLPipeline
from PIL import Image

from conftest import generators, make_config, max_pixel_difference
from sdxl_fixtures import SIZE, sdxl_base  # noqa: F401 (fixture)
from pipeline.common.errors import UserError
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.fixtures.addon_files import make_lora
from pipeline.run import generate

TOLERANCE = 1  # out of 255, per pixel
SEED, COUNT, STEPS, PROMPT, SCHEDULER = 3, 2, 5, "a red circle", "euler"


@pytest.fixture(scope="module")
def sdxl_loras(sdxl_base, tmp_path_factory):
    """SDXL LoRAs on the UNet and both encoders: a diffusers file, its kohya twin (same weights), and another."""
    folder = tmp_path_factory.mktemp("sdxl_loras")
    return {
        "diffusers": make_lora(sdxl_base, folder / "style.safetensors", seed=1, kind="diffusers"),
        "kohya": make_lora(sdxl_base, folder / "kohya_style.safetensors", seed=1, kind="kohya"),
        "other": make_lora(sdxl_base, folder / "other.safetensors", seed=5, kind="kohya"),
    }


def reference(model, loras=(), embeddings=(), prompt=PROMPT, negative=None) -> list:
    """diffusers' SDXL pipeline with the LoRAs (load_lora_weights + set_adapters) and the embeddings
    (load_textual_inversion of each encoder's vectors onto its own tokenizer and encoder)."""
    pipe = StableDiffusionXLPipeline.from_pretrained(model, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"a{i}")
        names.append(f"a{i}")
    if names:
        pipe.set_adapters(names, [weight for _, weight in loras])
    for token, vectors in embeddings:
        pipe.load_textual_inversion(vectors["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                    tokenizer=pipe.tokenizer)
        pipe.load_textual_inversion(vectors["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                    tokenizer=pipe.tokenizer_2)
    pipe.scheduler = make_scheduler(SCHEDULER, dict(pipe.scheduler.config), {}, [SEED + i for i in range(COUNT)])
    return pipe(prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=7.5, height=SIZE,
                width=SIZE, num_images_per_prompt=COUNT, generator=generators(SEED, COUNT), output_type="np").images


def ours(model, tmp_path, prompt=PROMPT, **settings) -> list[Image.Image]:
    """Our full run (config -> PNG files) read back."""
    cfg = make_config(model, tmp_path, prompt=prompt, steps=STEPS, seed=SEED, num_images=COUNT, height=SIZE,
                      width=SIZE, scheduler__name=SCHEDULER, **settings)
    return [Image.open(path).convert("RGB") for path in generate.run(cfg, progress=False)]


def lora_list(loras) -> str:
    """The config's loras list for (path, weight) pairs."""
    return "[" + ", ".join(f"{{path: '{path}', weight: {weight}}}" for path, weight in loras) + "]"


@pytest.mark.parametrize("kind", ["diffusers", "kohya"])
def test_lora_matches_diffusers(kind, sdxl_loras, sdxl_base, tmp_path):
    loras = [(sdxl_loras[kind], 0.8)]
    theirs = reference(sdxl_base, loras)
    assert max_pixel_difference(theirs, reference(sdxl_base)) > 10, "the LoRA must change the image"
    assert max_pixel_difference(ours(sdxl_base, tmp_path, loras=lora_list(loras)), theirs) <= TOLERANCE


def test_kohya_layout_equals_its_diffusers_twin(sdxl_loras, sdxl_base, tmp_path):
    diffusers = ours(sdxl_base, tmp_path / "d", loras=lora_list([(sdxl_loras["diffusers"], 0.8)]))
    kohya = ours(sdxl_base, tmp_path / "k", loras=lora_list([(sdxl_loras["kohya"], 0.8)]))
    assert max_pixel_difference(kohya, diffusers) == 0


def test_several_loras_match_diffusers(sdxl_loras, sdxl_base, tmp_path):
    loras = [(sdxl_loras["diffusers"], 0.5), (sdxl_loras["other"], -0.7)]
    theirs = reference(sdxl_base, loras)
    assert max_pixel_difference(theirs, reference(sdxl_base, loras[:1])) > 10
    assert max_pixel_difference(ours(sdxl_base, tmp_path, loras=lora_list(loras)), theirs) <= TOLERANCE


def test_sd1_lora_on_sdxl_is_one_sentence(tiny_model, sdxl_base, tmp_path):
    lora = make_lora(tiny_model, tmp_path / "sd1.safetensors", seed=2, kind="kohya")
    cfg = make_config(sdxl_base, tmp_path, loras=lora_list([(lora, 1.0)]))
    with pytest.raises(UserError, match=r"does not fit this model's UNet and text encoders \(size mismatch .*\); "
                                        r"it was made for another model than this Stable Diffusion XL one\.$"):
        generate.check(cfg)


def test_sdxl_lora_on_sd1_is_one_sentence(sdxl_loras, tiny_model, tmp_path):
    cfg = make_config(tiny_model, tmp_path, loras=lora_list([(sdxl_loras["kohya"], 1.0)]))
    with pytest.raises(UserError, match=r"has weights for text_encoder_2, which this Stable Diffusion 1.x model does "
                                        r"not have \(it has text_encoder, unet\); it was made for another model\.$"):
        generate.check(cfg)
