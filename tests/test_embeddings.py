"""Textual inversion: embeddings files of each format used in prompts and negative prompts, as diffusers uses them."""

import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import save_file

from conftest import generators, make_config, max_pixel_difference
from pipeline.run import generate


def vectors(count, seed):
    torch.manual_seed(seed)
    return torch.randn(count, 32) * 0.5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file per format: A1111 .pt (two vectors), A1111 .safetensors (three), diffusers' single key (one)."""
    folder = tmp_path_factory.mktemp("embeddings")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors(2, 1)}, "name": "old",
                "step": 500, "sd_checkpoint": None, "sd_checkpoint_name": None}, folder / "ptstyle.pt")
    save_file({"emb_params": vectors(3, 2)}, folder / "badhands.safetensors")
    save_file({"<glow>": vectors(1, 3)[0]}, folder / "glow.safetensors")
    return folder


def reference(tiny_model, paths, prompt, negative):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for path in paths:
        pipe.load_textual_inversion(str(path), token=path.stem)
    return pipe(prompt, negative_prompt=negative, num_inference_steps=4, guidance_scale=7.5, num_images_per_prompt=2,
                generator=generators(3, 2), output_type="np").images


def ours(tiny_model, tmp_path, prompt, negative, **extra):
    cfg = make_config(tiny_model, tmp_path, prompt=prompt, negative_prompt=negative, steps=4, seed=3, num_images=2,
                      scheduler__name="pndm", model__allow_pickle="true", **extra)
    return [Image.open(p) for p in generate.run(cfg, progress=False)]


@pytest.mark.parametrize("syntax", ["none", "a1111"])
def test_embeddings_match_diffusers(files, tiny_model, tmp_path, syntax):
    paths = [files / "ptstyle.pt", files / "badhands.safetensors", files / "glow.safetensors"]
    prompt, negative = "a ptstyle circle, glow", "badhands"
    theirs = reference(tiny_model, paths, prompt, negative)
    plain = reference(tiny_model, [], "a circle,", "")
    assert max_pixel_difference(theirs, plain) > 10
    listed = ours(tiny_model, tmp_path / "listed", prompt, negative, prompt_syntax=syntax,
                  embeddings="[" + ", ".join(str(p) for p in paths) + "]")
    assert max_pixel_difference(listed, theirs) <= 2
    from_dir = ours(tiny_model, tmp_path / "dir", prompt, negative, prompt_syntax=syntax, embeddings_dir=str(files))
    assert max_pixel_difference(from_dir, listed) == 0


def test_weighting_an_embedding_and_recording_it(files, tiny_model, tmp_path):
    plain = ours(tiny_model, tmp_path / "a", "a ptstyle circle", "", embeddings_dir=str(files))
    weighted_paths = list(generate.run(make_config(
        tiny_model, tmp_path / "b", prompt="a (ptstyle:1.4) circle", steps=4, seed=3, num_images=2,
        scheduler__name="pndm", model__allow_pickle="true", embeddings_dir=str(files)), progress=False))
    assert max_pixel_difference([Image.open(p) for p in weighted_paths], plain) > 0
    assert 'TI hashes: "ptstyle: ' in Image.open(weighted_paths[0]).info["parameters"]


def test_add_ons_are_read_back_and_regenerate_from_the_yaml(files, tiny_model, tmp_path):
    from sd_parsers import ParserManager

    from pipeline.lab.fixtures.addon_files import make_lora
    from pipeline.cli import main as cli

    lora = make_lora(tiny_model, tmp_path / "style.safetensors", seed=4, kind="kohya")
    cfg = make_config(tiny_model, tmp_path / "out", prompt="a (ptstyle:1.2) circle <lora:style:0.6>", clip_skip=2,
                      negative_prompt="badhands", steps=3, lora_dir=str(tmp_path), embeddings_dir=str(files),
                      scheduler__name="pndm", model__allow_pickle="true")
    first = next(generate.run(cfg, progress=False))
    info = ParserManager().parse(Image.open(first))
    assert info.metadata["Clip skip"] == "2"
    assert set(info.metadata["Hashes"]) == {"lora:style", "embed:ptstyle", "embed:badhands"}
    assert cli.run_cli(str(first.with_suffix(".yaml")), [f"output_dir={tmp_path / 'again'}"]) == 0
    again = next((tmp_path / "again").glob("*.png"))
    assert again.read_bytes() != b"" and max_pixel_difference([Image.open(again)], [Image.open(first)]) == 0
