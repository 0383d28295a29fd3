"""The config folders shipped for SD3 / SD3.5 and FLUX.1 one-file checkpoints build the released models: each
part's parameter count equals the released weights', and a checkpoint in the released layout (its tensor names
and shapes, made on the meta device from those very models) picks its folder and converts to exactly the tensors
the folder's transformer needs."""

import json

import pytest
import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
)

from pipeline.lab.fixtures.transformer_keys import flux_tensors, sd3_tensors
from pipeline.models.families import FAMILIES
from pipeline.models.single_file.detect import FAMILIES_DIR, config_folder
from pipeline.models.single_file.header import Header
from pipeline.models.weights_check import expected_tensors

# Parameter counts of the released weights (docs/sd3.md and docs/flux.md say where each comes from).
CLIP_L, CLIP_L_PROJECTED, BIG_G, T5_XXL, VAE = 123_060_480, 123_650_304, 694_659_840, 4_762_310_656, 83_819_683
RELEASED = {
    "sd3-medium": {"transformer": 2_028_328_000, "text_encoder": CLIP_L_PROJECTED, "text_encoder_2": BIG_G,
                   "text_encoder_3": T5_XXL, "vae": VAE},
    "sd3.5-medium": {"transformer": 2_243_171_520, "text_encoder": CLIP_L_PROJECTED, "text_encoder_2": BIG_G,
                     "text_encoder_3": T5_XXL, "vae": VAE},
    "sd3.5-large": {"transformer": 8_056_627_520, "text_encoder": CLIP_L_PROJECTED, "text_encoder_2": BIG_G,
                    "text_encoder_3": T5_XXL, "vae": VAE},
    "flux-dev": {"transformer": 11_901_408_320, "text_encoder": CLIP_L, "text_encoder_2": T5_XXL, "vae": VAE},
    "flux-schnell": {"transformer": 11_891_178_560, "text_encoder": CLIP_L, "text_encoder_2": T5_XXL, "vae": VAE},
}
TEXT = {"CLIPTextModel": (CLIPTextConfig, CLIPTextModel),
        "CLIPTextModelWithProjection": (CLIPTextConfig, CLIPTextModelWithProjection),
        "T5EncoderModel": (T5Config, T5EncoderModel)}


def _build(folder, part):
    """The part's model from the shipped config, on the meta device."""
    config = json.loads((folder / part / "config.json").read_text())
    if "architectures" in config:
        config_class, model_class = TEXT[config["architectures"][0]]
        return model_class(config_class.from_pretrained(folder, subfolder=part))
    model_class = {"SD3Transformer2DModel": SD3Transformer2DModel, "FluxTransformer2DModel": FluxTransformer2DModel,
                   "AutoencoderKL": AutoencoderKL}[config["_class_name"]]
    return model_class.from_config(model_class.load_config(folder, subfolder=part))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_the_shipped_configs_build_the_released_models(name):
    folder = FAMILIES_DIR / name
    with torch.device("meta"):
        counts = {part: sum(p.numel() for p in _build(folder, part).parameters()) for part in RELEASED[name]}
    assert counts == RELEASED[name]
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["shift"], scheduler.get("use_dynamic_shifting", False)) == \
        ((1.0, False) if name == "flux-schnell" else (3.0, name == "flux-dev"))
    clips, t5 = (("tokenizer",), "tokenizer_2") if name.startswith("flux") else (("tokenizer", "tokenizer_2"),
                                                                                   "tokenizer_3")
    assert all(len(CLIPTokenizer.from_pretrained(folder, subfolder=clip)) == 49408 for clip in clips)
    assert not (folder / t5).exists()  # T5's tokenizer cannot be built offline: a diffusers-format folder brings it


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_a_released_layout_picks_its_folder_and_converts_to_its_transformer(name, tmp_path):
    folder = FAMILIES_DIR / name
    family = FAMILIES["flux" if name.startswith("flux") else "sd3"]
    with torch.device("meta"):
        model = _build(folder, "transformer")
    released = (flux_tensors if name.startswith("flux") else sd3_tensors)(model.state_dict())
    header = Header({"model.diffusion_model." + k: tuple(t.shape) for k, t in released.items()})
    assert config_folder(header, tmp_path, "") == folder
    config = dict(model.config)
    converted = family.flow_file.convert_transformer({k: torch.empty(s, device="meta")
                                                      for k, s in header.tensors.items()}, config)
    assert {k: tuple(t.shape) for k, t in converted.items()} == \
        expected_tensors(family.part("transformer"), folder / "transformer", config)
