"""SDXL base and refiner checkpoints in Stability's original layout: the shipped config folders build the released
models, the family and config folder come from the text keys, and tiny SDXL models written as one file give the
images of their folders."""

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from conftest import make_config, max_pixel_difference
from sdxl_fixtures import SIZE
from pipeline.common.errors import UserError
from pipeline.lab.fixtures import to_ldm_sdxl as layout
from pipeline.lab.fixtures.to_ldm_sdxl import BIG_G, CLIP_L, REFINER_BIG_G, write_sdxl_checkpoint
from pipeline.models.components import load_components
from pipeline.models.inspect import inspect_model
from pipeline.models.single_file.detect import FAMILIES_DIR, check_fit, config_folder, pick_family, text_configs
from pipeline.models.single_file.header import UNET, VAE, Header, read_header
from pipeline.run import generate

SHARED = dict(prompt="a red circle", negative_prompt="blue", steps=4, seed=5, num_images=2, scheduler__name="euler_a")
TOKENS = {CLIP_L: "text_model.embeddings.token_embedding.weight", BIG_G: "token_embedding.weight"}


def _images(cfg) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in generate.run(cfg, progress=False)])


def _configs_only(folder, target):
    """The folder's configs and tokenizers without its weight files: a file read with them takes nothing else."""
    return shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))


@pytest.fixture(scope="module")
def files(sdxl_base, sdxl_refiner, tmp_path_factory):
    """The tiny base and refiner as one checkpoint each, with config folders holding no weights."""
    root = tmp_path_factory.mktemp("sdxl-files")
    return {kind: (write_sdxl_checkpoint(folder, root / f"{kind}.safetensors"),
                   _configs_only(folder, root / f"{kind}-configs"))
            for kind, folder in (("base", sdxl_base), ("refiner", sdxl_refiner))}


def test_the_files_hold_the_original_layout(files):
    base, refiner = (read_header(files[kind][0], False) for kind in ("base", "refiner"))
    for header in (base, refiner):
        assert header.has(UNET + "label_emb.0.0.") and header.has(VAE + "decoder.up.")
        assert not any(name.startswith(("down_blocks", "text_model", "encoder.")) for name in header.tensors)
    assert base.has(CLIP_L + "text_model.encoder.layers.") and base.has(BIG_G + "transformer.resblocks.")
    assert refiner.has(REFINER_BIG_G + "transformer.resblocks.") and not refiner.has(CLIP_L)


@pytest.mark.parametrize("kind,task", [("base", "txt2img"), ("refiner", "img2img")])
def test_a_checkpoint_file_gives_the_images_of_its_folder(kind, task, files, sdxl_base, sdxl_refiner, sdxl_inputs,
                                                          tmp_path):
    folder = sdxl_base if kind == "base" else sdxl_refiner
    file, configs = files[kind]
    shared = dict(SHARED, task=task, **(dict(height=SIZE, width=SIZE) if task == "txt2img" else
                                        dict(image=sdxl_inputs["image"], strength=0.6)))
    expected = _images(make_config(folder, tmp_path / "folder", **shared))
    assert expected.std() > 2 and max_pixel_difference(expected[0], expected[1]) > 2, "trivial images"
    found = _images(make_config(file, tmp_path / "file", model__config=str(configs), **shared))
    assert max_pixel_difference(found, expected) <= ALIGNMENT_LEVELS


# The file's tensors equal the folder's exactly (test below); with the kernels capped to AVX2 the refiner's images
# came out one level apart (AVX-512: equal). What differs between the two loads is where the weights lie in memory
# (on this tiny refiner's UNet 419 of 428 tensors are off 64-byte alignment from the folder, 428 from the file), the
# likely cause (blocked GEMM kernels can sum in another order for other alignments); not isolated further.
ALIGNMENT_LEVELS = 1


@pytest.mark.parametrize("kind", ["base", "refiner"])
def test_a_checkpoint_files_weights_equal_its_folders_exactly(kind, files, sdxl_base, sdxl_refiner):
    folder = sdxl_base if kind == "base" else sdxl_refiner
    file, configs = files[kind]
    from_folder = load_components(inspect_model(str(folder)), torch.device("cpu"), torch.float32)
    from_file = load_components(inspect_model(str(file), config=str(configs)), torch.device("cpu"), torch.float32)
    assert set(from_folder.parts) == set(from_file.parts)
    for part, model in from_folder.parts.items():
        if isinstance(model, torch.nn.Module):
            mine, theirs = from_file.parts[part].state_dict(), model.state_dict()
            assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), part


@pytest.mark.parametrize("prefix", [CLIP_L, BIG_G])
def test_each_text_encoder_is_read_from_its_own_keys(prefix, files, tmp_path):
    """Scaling one encoder's token embedding in the file changes the image: both encoders are read from the file,
    each at its prefix, so the equal images above are not the other encoder's alone."""
    file, configs = files["base"]
    tensors = load_file(file)
    tensors[prefix + TOKENS[prefix]] = tensors[prefix + TOKENS[prefix]] * 3
    changed = tmp_path / "changed.safetensors"
    save_file(tensors, changed)
    shared = dict(SHARED, height=SIZE, width=SIZE)
    plain = _images(make_config(file, tmp_path / "plain", model__config=str(configs), **shared))
    assert max_pixel_difference(_images(make_config(changed, tmp_path / "x", model__config=str(configs), **shared)),
                                plain) > 2


def test_base_and_refiner_files_give_the_images_of_their_folders(files, sdxl_base, sdxl_refiner, tmp_path):
    shared = dict(SHARED, height=SIZE, width=SIZE, steps=6, refiner__switch_at=0.8)
    expected = _images(make_config(sdxl_base, tmp_path / "folders", refiner__path=sdxl_refiner, **shared))
    alone = _images(make_config(sdxl_base, tmp_path / "alone", **shared))
    assert max_pixel_difference(expected, alone) > 2, "the refiner did not change the image"
    (base, base_configs), (refiner, refiner_configs) = files["base"], files["refiner"]
    found = _images(make_config(base, tmp_path / "files", model__config=str(base_configs), refiner__path=refiner,
                                refiner__config=str(refiner_configs), **shared))
    assert max_pixel_difference(found, expected) <= ALIGNMENT_LEVELS


def test_a_float16_file_keeps_its_force_upcast_vae_in_float32(files):
    file, configs = files["base"]
    info = inspect_model(str(file), config=str(configs))
    components = load_components(info, torch.device("cpu"), torch.float16)
    assert components.unet.dtype == components.text_pairs[1][1].dtype == torch.float16
    assert components.vae.dtype == torch.float32


def _fake(tmp_path, *text_keys):
    """A checkpoint holding only the identifying keys."""
    tensors = {UNET + "input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3), VAE + "encoder.conv_in.weight":
               torch.zeros(8, 3, 3, 3), **{key: torch.zeros(4, 4) for key in text_keys}}
    path = tmp_path / "fake.safetensors"
    save_file(tensors, path)
    return path


@pytest.mark.parametrize("keys,folder", [
    ((CLIP_L + "text_model.embeddings.token_embedding.weight", BIG_G + "token_embedding.weight"), "sdxl"),
    ((REFINER_BIG_G + "token_embedding.weight", REFINER_BIG_G + "text_projection"), "sdxl-refiner"),
])
def test_the_family_comes_from_the_text_keys(keys, folder, tmp_path):
    path = _fake(tmp_path, *keys)
    assert config_folder(read_header(path, False), path, "") == FAMILIES_DIR / folder


@pytest.mark.parametrize("kind", ["base", "refiner"])
def test_a_tiny_file_is_read_with_its_familys_folder_and_refused_for_its_shapes(kind, files):
    """Without model.config the shipped folder of the family is picked, and a model of other shapes is one
    sentence naming it."""
    folder = FAMILIES_DIR / ("sdxl" if kind == "base" else "sdxl-refiner")
    with pytest.raises(UserError, match=f"does not fit the unet of {folder}:") as err:
        inspect_model(str(files[kind][0]))
    assert "\n" not in str(err.value)


def test_a_file_with_unknown_text_keys_is_one_sentence(tmp_path):
    path = _fake(tmp_path, "text_encoders.clip_g.transformer.text_model.final_layer_norm.weight")
    with pytest.raises(UserError, match="holds no text encoder of a known family") as err:
        inspect_model(str(path))
    message = str(err.value)
    assert "\n" not in message and CLIP_L in message and REFINER_BIG_G in message


# Parameter counts of the released models (stabilityai/stable-diffusion-xl-base-1.0 and -refiner-1.0). The UNets'
# shapes are those of Stability's configs/inference/sd_xl_base.yaml and sd_xl_refiner.yaml (generative-models):
# 320 channels x [1, 2, 4], transformer depth [1, 2, 10], context 2048, adm 2816 for the base; 384 x [1, 2, 4, 4],
# depth 4, context 1280, adm 2560 for the refiner. 2,567,463,684 is the base UNet's count as public projects give
# it from the 1680 `model.diffusion_model.*` tensors of sd_xl_base_1.0.safetensors; 2,259,526,660 the refiner's
# (a public script counting it from the downloaded config; 4.52 GB in float16); 694,659,840 OpenCLIP bigG with its
# projection and 123,060,480 CLIP ViT-L (SD 1.x's) as public parameter tables of SDXL base give them; the VAE is
# SD's (83,653,863).
RELEASED = {
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
    "sdxl-refiner": {"unet": 2_259_526_660, "vae": 83_653_863, "text_encoder_2": 694_659_840},
}
TEXT_MODELS = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection}


@pytest.mark.parametrize("family", sorted(RELEASED))
def test_the_shipped_configs_build_the_released_models(family):
    folder = FAMILIES_DIR / family
    with torch.device("meta"):
        parts = {"unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet")),
                 "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))}
        parts.update({part: TEXT_MODELS[part](CLIPTextConfig.from_pretrained(folder, subfolder=part))
                      for part in RELEASED[family] if part in TEXT_MODELS})
    assert {part: sum(p.numel() for p in model.parameters()) for part, model in parts.items()} == RELEASED[family]
    assert parts["vae"].config.scaling_factor == 0.13025 and parts["vae"].config.force_upcast
    index = json.loads((folder / "model_index.json").read_text())
    refiner = family == "sdxl-refiner"
    assert index["_class_name"] == ("StableDiffusionXLImg2ImgPipeline" if refiner else "StableDiffusionXLPipeline")
    assert index["force_zeros_for_empty_prompt"] is not refiner
    assert index.get("requires_aesthetics_score", False) is refiner
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["_class_name"], scheduler["timestep_spacing"]) == ("EulerDiscreteScheduler", "leading")


@pytest.mark.parametrize("family,unet_tensors", [("sdxl", 1680), ("sdxl-refiner", 1220)])
def test_a_full_size_layout_fits_the_shipped_configs(family, unet_tensors):
    """The original-layout names and shapes of full-size models (built on the meta device, written as to_ldm_sdxl
    writes them) pass the checks loading runs; the base's 1680 UNet tensors are sd_xl_base_1.0.safetensors' count."""
    folder = FAMILIES_DIR / family
    configs = {"unet": dict(UNet2DConditionModel.load_config(folder, subfolder="unet")),
               "vae": dict(AutoencoderKL.load_config(folder, subfolder="vae"))}
    texts = {part: CLIPTextConfig.from_pretrained(folder, subfolder=part) for part in RELEASED[family]
             if part in TEXT_MODELS}
    with torch.device("meta"):
        tensors = {**layout.unet_tensors(UNet2DConditionModel.from_config(configs["unet"])),
                   **layout.vae_tensors(AutoencoderKL.from_config(configs["vae"]))}
        if family == "sdxl":
            clip_l = CLIPTextModel(texts["text_encoder"]).state_dict()
            tensors.update({CLIP_L + "text_model." + name: tensor for name, tensor in clip_l.items()})
        big_g = CLIPTextModelWithProjection(texts["text_encoder_2"])
        tensors.update(layout.big_g_tensors(big_g, BIG_G if family == "sdxl" else REFINER_BIG_G))
    header = Header({name: tuple(tensor.shape) for name, tensor in tensors.items()})
    assert sum(name.startswith(UNET) for name in header.tensors) == unet_tensors
    path = folder / "model.safetensors"
    assert config_folder(header, path, "") == folder
    check_fit(header, path, folder, configs, text_configs(folder, pick_family(header, path)))


def test_the_tokenizers_are_clips_and_the_second_pads_with_exclamation_marks():
    first = CLIPTokenizer.from_pretrained(FAMILIES_DIR / "sdxl", subfolder="tokenizer")
    assert first("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert first("a cat", padding="max_length").input_ids[4:6] == [49407, 49407]
    for family in ("sdxl", "sdxl-refiner"):
        second = CLIPTokenizer.from_pretrained(FAMILIES_DIR / family, subfolder="tokenizer_2")
        assert len(second) == 49408 and second("a cat", padding="max_length").input_ids[3:6] == [49407, 0, 0]
