"""Single-file checkpoints in the original layout: the family picked from keys and shapes, the shipped config
folders, and tiny models written as one file giving the same images as their folder form."""

import hashlib
import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from conftest import make_config
from pipeline.run import generate
from pipeline.common.errors import UserError
from pipeline.models.single_file.detect import FAMILIES_DIR, config_folder
from pipeline.models.families.sd import CLIP, OPEN_CLIP
from pipeline.models.single_file.header import UNET, VAE, read_header
from pipeline.lab.fixtures.to_ldm import write_checkpoint
from pipeline.lab.fixtures.tiny_model import build_tiny_model


def _images(cfg):
    return [np.asarray(Image.open(p)) for p in generate.run(cfg, progress=False)]


@pytest.fixture(scope="module")
def sd2_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sd2-file") / "model", sd2=True)


@pytest.mark.parametrize("layout", ["clip", "open_clip"])
def test_a_checkpoint_file_gives_the_images_of_its_folder(layout, tiny_model, sd2_model, tmp_path):
    folder = tiny_model if layout == "clip" else sd2_model
    file = write_checkpoint(folder, tmp_path / "tiny.safetensors", open_clip=layout == "open_clip")
    header = read_header(file, False)
    assert header.has(UNET) and header.has(VAE) and header.has(CLIP if layout == "clip" else OPEN_CLIP)
    assert not any(name.startswith(("down_blocks", "text_model")) for name in header.tensors)
    shared = dict(prompt="a red circle", negative_prompt="blue", steps=4, seed=5, num_images=2)
    expected = _images(make_config(folder, tmp_path / "folder", **shared))
    found = _images(make_config(file, tmp_path / "file", model__config=str(folder), **shared))
    assert all(np.array_equal(a, b) for a, b in zip(expected, found)) and len(found) == 2


def test_a_ckpt_file_loads_weights_only_with_allow_pickle(tiny_model, tmp_path):
    file = write_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    from safetensors.torch import load_file

    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": load_file(file), "global_step": 1234}, ckpt)
    shared = dict(prompt="a red circle", steps=3, seed=1)
    expected = _images(make_config(tiny_model, tmp_path / "folder", **shared))
    found = _images(make_config(ckpt, tmp_path / "ckpt", model__config=str(tiny_model), model__allow_pickle=True,
                                **shared))
    assert np.array_equal(expected[0], found[0])


def test_diffusers_own_single_file_pipeline_agrees(tiny_model, tmp_path):
    from diffusers import StableDiffusionPipeline

    file = write_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    pipe = StableDiffusionPipeline.from_single_file(str(file), config=str(tiny_model), local_files_only=True,
                                                    safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle", num_inference_steps=4, guidance_scale=7.5,
                  generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    mine = _images(make_config(file, tmp_path / "out", model__config=str(tiny_model), prompt="a red circle",
                               steps=4, seed=5, scheduler__name="pndm"))[0]
    assert np.abs(mine.astype(int) - np.round(theirs * 255).astype(int)).max() <= 1


def test_metadata_names_the_file_and_its_a1111_hash(tiny_model, tmp_path):
    file = write_checkpoint(tiny_model, tmp_path / "my model.safetensors")
    cfg = make_config(file, tmp_path / "out", model__config=str(tiny_model), steps=2)
    path = next(iter(generate.run(cfg, progress=False)))
    text = Image.open(path).text["parameters"]
    short = hashlib.sha256(file.read_bytes()).hexdigest()[:10]
    assert f"Model hash: {short}, Model: my model," in text
    from sd_parsers import ParserManager

    model = next(iter(ParserManager().parse(path).models))
    assert (model.name, model.hash) == ("my model", short)


def _fake(tmp_path, text_key, width, name="fake.safetensors", step=None):
    """A checkpoint holding only the identifying keys, with small tensors of the shapes that matter."""
    tensors = {UNET + "input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3), VAE + "encoder.conv_in.weight":
               torch.zeros(8, 3, 3, 3), text_key: torch.zeros(10, width)}
    path = tmp_path / name
    if name.endswith(".ckpt"):
        torch.save({"state_dict": tensors, "global_step": step}, path)
    else:
        save_file(tensors, path)
    return path


@pytest.mark.parametrize("text_key,width,name,step,family", [
    (CLIP + "text_model.embeddings.token_embedding.weight", 768, "a.safetensors", None, "sd1"),
    (OPEN_CLIP + "token_embedding.weight", 1024, "b.safetensors", None, "sd2"),
    (OPEN_CLIP + "token_embedding.weight", 1024, "c.ckpt", 875000, "sd2-base"),
    (OPEN_CLIP + "token_embedding.weight", 1024, "d.ckpt", 110000, "sd2"),
])
def test_the_family_comes_from_keys_and_the_recorded_step(text_key, width, name, step, family, tmp_path):
    path = _fake(tmp_path, text_key, width, name, step)
    assert config_folder(read_header(path, True), path, "") == FAMILIES_DIR / family
    assert config_folder(read_header(path, True), path, "sd1") == FAMILIES_DIR / "sd1"


def test_a_file_without_a_unet_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.lora_down.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(UserError, match="holds no UNet"):
        config_folder(read_header(path, False), path, "")


# Parameter counts of the released models (diffusers' model cards and config files); the shipped JSON configs
# must build exactly these models.
RELEASED = {
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sd2-base": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
}


@pytest.mark.parametrize("family", sorted(RELEASED))
def test_the_shipped_configs_build_the_released_models(family):
    folder = FAMILIES_DIR / family
    with torch.device("meta"):
        parts = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")),
        }
    counts = {part: sum(p.numel() for p in model.parameters()) for part, model in parts.items()}
    assert counts == RELEASED[family]
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == ("v_prediction" if family == "sd2" else "epsilon")


def test_the_tokenizer_is_clips():
    tokenizer = CLIPTokenizer.from_pretrained(FAMILIES_DIR / "sd1", subfolder="tokenizer")
    assert len(tokenizer) == 49408
    # ids as CLIP's and SD 1.x's tokenizer give them (e.g. diffusers' documentation of the astronaut prompt)
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer("A photograph of an astronaut riding a horse").input_ids == [
        49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    sd2 = CLIPTokenizer.from_pretrained(FAMILIES_DIR / "sd2", subfolder="tokenizer")
    assert sd2("a cat", padding="max_length").input_ids[4:6] == [0, 0]  # SD 2.x pads with '!'


def test_an_inpainting_checkpoint_is_read_with_nine_input_channels(tiny_model, tmp_path):
    from pipeline.models.inspect import inspect_model

    inpaint = build_tiny_model(tmp_path / "inpaint", unet_in_channels=9)
    file = write_checkpoint(inpaint, tmp_path / "inpaint.safetensors")
    info = inspect_model(str(file), config=str(tiny_model))  # the 4-channel model's configs, as a family's are
    assert info.single_file and info.unet["in_channels"] == 9
