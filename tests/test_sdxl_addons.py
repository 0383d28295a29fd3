"""SDXL add-ons: LoRA files (diffusers and kohya layouts, both text encoders) and textual-inversion embeddings
(clip_l and clip_g vectors) equal diffusers' StableDiffusionXLPipeline loading the same files, within 1/255 per
pixel; a LoRA or an embedding of the other family is one sentence before loading."""

import pytest
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import generators, make_config, max_pixel_difference
from sdxl_fixtures import SIZE
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


def reference(model, loras=(), embeddings=(), prompt=PROMPT, negative=None, cls=StableDiffusionXLPipeline,
              **call) -> list:
    """diffusers' SDXL pipeline with the LoRAs (load_lora_weights + set_adapters) and the embeddings
    (load_textual_inversion of each encoder's vectors onto its own tokenizer and encoder)."""
    pipe = cls.from_pretrained(model, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"a{i}")
        names.append(f"a{i}")
    if names:
        pipe.set_adapters(names, [weight for _, weight in loras])
    for path in embeddings:
        load_embedding(pipe, path)
    pipe.scheduler = make_scheduler(SCHEDULER, dict(pipe.scheduler.config), {}, [SEED + i for i in range(COUNT)])
    call = call or dict(height=SIZE, width=SIZE)
    return pipe(prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=7.5,
                num_images_per_prompt=COUNT, generator=generators(SEED, COUNT), output_type="np", **call).images


def load_embedding(pipe, path):
    """An SDXL embedding file into a diffusers pipeline: clip_l onto tokenizer/text_encoder, clip_g onto
    tokenizer_2/text_encoder_2 (where the pipeline has them), the file name as the token."""
    pairs = {"clip_l": (pipe.tokenizer, pipe.text_encoder), "clip_g": (pipe.tokenizer_2, pipe.text_encoder_2)}
    for name, (tokenizer, text_encoder) in pairs.items():
        if text_encoder is not None:
            pipe.load_textual_inversion(load_file(path)[name], token=path.stem, text_encoder=text_encoder,
                                        tokenizer=tokenizer)
    return pipe


def ours(model, tmp_path, prompt=PROMPT, **settings) -> list[Image.Image]:
    """Our full run (config -> PNG files) read back; SIZE x SIZE unless an input image gives the size."""
    settings = settings if "image" in settings else {"height": SIZE, "width": SIZE, **settings}
    cfg = make_config(model, tmp_path, prompt=prompt, steps=STEPS, seed=SEED, num_images=COUNT,
                      scheduler__name=SCHEDULER, **settings)
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


def vectors(count: int, seed: int) -> torch.Tensor:
    """Random token vectors of the tiny encoders' width."""
    torch.manual_seed(seed)
    return torch.randn(count, 32) * 0.5


@pytest.fixture(scope="module")
def sdxl_embeddings(tmp_path_factory):
    """SDXL embeddings (clip_l and clip_g tensors, as A1111 and diffusers read them): two vectors and one; and two
    files with one encoder's vectors (emb_params, clip_l alone)."""
    folder = tmp_path_factory.mktemp("sdxl_embeddings")
    save_file({"clip_l": vectors(2, 1), "clip_g": vectors(2, 2)}, folder / "xlstyle.safetensors")
    save_file({"clip_l": vectors(1, 3), "clip_g": vectors(1, 4)}, folder / "badhands.safetensors")
    save_file({"emb_params": vectors(2, 5)}, folder / "onestyle.safetensors")
    save_file({"clip_l": vectors(2, 6)}, folder / "lstyle.safetensors")
    return folder


@pytest.mark.parametrize("syntax", ["none", "a1111"])
def test_embeddings_match_diffusers(syntax, sdxl_embeddings, sdxl_base, tmp_path):
    paths = [sdxl_embeddings / "xlstyle.safetensors", sdxl_embeddings / "badhands.safetensors"]
    prompt, negative = "a xlstyle circle", "badhands"
    theirs = reference(sdxl_base, embeddings=paths, prompt=prompt, negative=negative)
    assert max_pixel_difference(theirs, reference(sdxl_base, prompt="a circle")) > 10
    listed = ours(sdxl_base, tmp_path / "listed", prompt, negative_prompt=negative, prompt_syntax=syntax,
                  embeddings="[" + ", ".join(str(p) for p in paths) + "]")
    assert max_pixel_difference(listed, theirs) <= TOLERANCE
    from_dir = ours(sdxl_base, tmp_path / "dir", prompt, negative_prompt=negative, prompt_syntax=syntax,
                    embeddings_dir=str(sdxl_embeddings))
    assert max_pixel_difference(from_dir, listed) == 0


def test_refiner_takes_the_clip_g_vectors(sdxl_embeddings, sdxl_refiner, sdxl_inputs, tmp_path):
    path, prompt = sdxl_embeddings / "xlstyle.safetensors", "a xlstyle circle"
    image = dict(image=Image.open(sdxl_inputs["image"]), strength=0.6)
    theirs = reference(sdxl_refiner, embeddings=[path], prompt=prompt, cls=StableDiffusionXLImg2ImgPipeline, **image)
    plain = reference(sdxl_refiner, prompt="a circle", cls=StableDiffusionXLImg2ImgPipeline, **image)
    assert max_pixel_difference(theirs, plain) > 10
    mine = ours(sdxl_refiner, tmp_path, prompt, task="img2img", image=sdxl_inputs["image"], strength=0.6,
                embeddings=f"[{path}]")
    assert max_pixel_difference(mine, theirs) <= TOLERANCE


def test_a_refiner_after_the_base_takes_the_clip_g_vectors(sdxl_embeddings, sdxl_base, sdxl_refiner, tmp_path):
    """With refiner.path the refiner's own tokenizer_2/text_encoder_2 get the token and the clip_g vectors too (the
    tiny refiner hardly listens to its text, so this is checked on the loaded parts, not on pixels)."""
    path = sdxl_embeddings / "xlstyle.safetensors"
    cfg = make_config(sdxl_base, tmp_path, prompt="a xlstyle circle", refiner__path=sdxl_refiner,
                      embeddings=f"[{path}]")
    refiner = generate.load(generate.check(cfg)).refiner
    tokenizer, encoder = refiner.parts["tokenizer_2"], refiner.parts["text_encoder_2"]
    ids = tokenizer.convert_tokens_to_ids(["xlstyle", "xlstyle_1"])
    assert tokenizer.unk_token_id not in ids and len(set(ids)) == 2
    assert torch.equal(encoder.get_input_embeddings().weight[ids], load_file(path)["clip_g"])


@pytest.mark.parametrize("name,held", [("onestyle", r"one set of vectors \(for one text encoder\)"),
                                       ("lstyle", "clip_l vectors only")])
def test_one_encoder_embedding_on_sdxl_is_one_sentence(name, held, sdxl_embeddings, sdxl_base, tmp_path):
    cfg = make_config(sdxl_base, tmp_path, embeddings=f"[{sdxl_embeddings / name}.safetensors]")
    with pytest.raises(UserError, match=rf"{name}.safetensors holds {held}, but this Stable Diffusion XL model needs "
                                        r"clip_l and clip_g vectors, one set per text encoder; it was made for "
                                        r"another model\.$"):
        generate.check(cfg)


def test_sdxl_embedding_on_sd1_is_one_sentence(sdxl_embeddings, tiny_model, tmp_path):
    cfg = make_config(tiny_model, tmp_path, embeddings=f"[{sdxl_embeddings / 'xlstyle.safetensors'}]")
    with pytest.raises(UserError, match=r"xlstyle.safetensors holds SDXL vectors \(clip_l and clip_g, one set per "
                                        r"text encoder\), but this Stable Diffusion 1.x model has one text encoder; "
                                        r"it was made for Stable Diffusion XL\.$"):
        generate.check(cfg)
