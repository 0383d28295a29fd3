"""LoRA: our separately loaded parts with diffusers' loaders match pipe.load_lora_weights + set_adapters."""

import re

import pytest
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import generators, make_config, max_pixel_difference
from pipeline.lab.fixtures.addon_files import make_lora
from pipeline.common.errors import UserError
from pipeline.run import generate


@pytest.fixture(scope="module")
def lora_files(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return {
        "diffusers": make_lora(tiny_model, folder / "style.safetensors", seed=1, kind="diffusers"),
        "kohya": make_lora(tiny_model, folder / "kohya_style.safetensors", seed=2, kind="kohya"),
        "unet_only": make_lora(tiny_model, folder / "unet only.safetensors", seed=3, text=False),
    }


def reference(tiny_model, loras, prompt="a red circle"):
    """diffusers' own pipeline with the same LoRA files and weights."""
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"a{i}")
        names.append(f"a{i}")
    pipe.set_adapters(names, [w for _, w in loras])
    return pipe(prompt, num_inference_steps=4, guidance_scale=7.5, num_images_per_prompt=2,
                generator=generators(3, 2), output_type="np").images


def ours(tiny_model, tmp_path, loras, **extra):
    items = "[" + ", ".join(f"{{path: '{p}', weight: {w}}}" for p, w in loras) + "]"
    cfg = make_config(tiny_model, tmp_path, prompt="a red circle", steps=4, seed=3, num_images=2, loras=items,
                      scheduler__name="pndm", **extra)
    return [Image.open(p) for p in generate.run(cfg, progress=False)]


@pytest.mark.parametrize("kind", ["diffusers", "kohya"])
def test_one_lora_matches_diffusers(kind, lora_files, tiny_model, tmp_path, reference_pipe):
    loras = [(lora_files[kind], 0.8)]
    mine, theirs = ours(tiny_model, tmp_path, loras), reference(tiny_model, loras)
    base = reference_pipe("a red circle", num_inference_steps=4, guidance_scale=7.5, num_images_per_prompt=2,
                          generator=generators(3, 2), output_type="np").images
    assert max_pixel_difference(theirs, base) > 10, "the LoRA must change the image for parity to mean something"
    assert max_pixel_difference(mine, theirs) <= 2


def test_several_loras_at_once_match_diffusers(lora_files, tiny_model, tmp_path):
    loras = [(lora_files["diffusers"], 0.5), (lora_files["kohya"], -0.7), (lora_files["unet_only"], 1.2)]
    assert max_pixel_difference(ours(tiny_model, tmp_path, loras), reference(tiny_model, loras)) <= 2


def test_weight_zero_is_the_base_image(lora_files, tiny_model, tmp_path):
    base = ours(tiny_model, tmp_path / "base", [])
    zero = ours(tiny_model, tmp_path / "zero", [(lora_files["kohya"], 0.0), (lora_files["diffusers"], 0.0)])
    assert max_pixel_difference(zero, base) == 0


def test_prompt_tag_uses_lora_dir_and_is_recorded(lora_files, tiny_model, tmp_path):
    folder = lora_files["kohya"].parent
    tagged = make_config(tiny_model, tmp_path / "tag", prompt="a red <lora:kohya_style:0.8>circle", steps=4, seed=3,
                         num_images=2, lora_dir=str(folder), scheduler__name="pndm")
    paths = list(generate.run(tagged, progress=False))
    listed = ours(tiny_model, tmp_path / "list", [(lora_files["kohya"], 0.8)])
    assert max_pixel_difference([Image.open(p) for p in paths], listed) == 0
    assert 'Lora hashes: "kohya_style: ' in Image.open(paths[0]).info["parameters"]


def test_a_file_in_two_namings_is_refused_not_half_applied(lora_files, tiny_model, tmp_path):
    """diffusers' convert_state_dict_to_diffusers renames only the attention projections of a PEFT state dict
    (to_q.lora_A -> to_q.lora.down); diffusers' loader, seeing PEFT names first (attn1's here), would drop the
    renamed layers (attn2's) silently."""
    state = load_file(lora_files["unet_only"])
    renamed = lambda key: re.sub(r"(attn2\.to_[qkv]|attn2\.to_out\.0)\.lora_([AB])\.",  # noqa: E731
                                 lambda m: f"{m[1]}.lora.{'down' if m[2] == 'A' else 'up'}.", key)
    mixed = {renamed(key): value for key, value in state.items()}
    assert mixed.keys() != state.keys()
    save_file(mixed, tmp_path / "mixed.safetensors")
    with pytest.raises(UserError, match=r"names \d+ layers but only \d+ of them fit this model's modules"):
        ours(tiny_model, tmp_path, [(tmp_path / "mixed.safetensors", 1.0)])
