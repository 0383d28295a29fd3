"""SD 2.x-style models (v-prediction, '!' padding, GELU, linear projections) end to end: parity with diffusers."""

import pytest
import torch
from diffusers import StableDiffusionPipeline
from transformers import CLIPTextModel, CLIPTokenizer

from conftest import generators, make_config, max_pixel_difference
from pipeline.run import generate
from pipeline.engine.schedulers import make_scheduler
from pipeline.text.encoding import encode_texts
from pipeline.lab.fixtures.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def sd2_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sd2") / "model", sd2=True)


@pytest.fixture(scope="module")
def sd2_pipe(sd2_model):
    pipe = StableDiffusionPipeline.from_pretrained(sd2_model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.tokenizer.pad_token == "!"
    return pipe


@pytest.mark.parametrize("name,rescale", [("pndm", 0.0), ("ddim", 0.7), ("euler", 0.7), ("dpmpp_2m_karras", 0.0),
                                          ("unipc", 0.7)])
def test_v_prediction_matches_diffusers(name, rescale, sd2_model, sd2_pipe, tmp_path):
    config = dict(StableDiffusionPipeline.from_pretrained(sd2_model, safety_checker=None).scheduler.config)
    sd2_pipe.scheduler = make_scheduler(name, config, {}, [3, 4])
    theirs = sd2_pipe("a red circle", negative_prompt="blue", num_inference_steps=5, guidance_scale=7.5,
                      guidance_rescale=rescale, num_images_per_prompt=2, generator=generators(3, 2),
                      output_type="np").images
    cfg = make_config(sd2_model, tmp_path, prompt="a red circle", negative_prompt="blue", steps=5, seed=3,
                      num_images=2, guidance_rescale=rescale, scheduler__name=name)
    from PIL import Image

    mine = [Image.open(p) for p in generate.run(cfg, progress=False)]
    assert max_pixel_difference(mine, theirs) <= 1


def test_rescale_changes_a_v_prediction_image(sd2_pipe):
    images = [sd2_pipe("a red circle", num_inference_steps=5, guidance_scale=7.5, guidance_rescale=r,
                       generator=generators(3, 1), output_type="np").images for r in (0.0, 0.7)]
    assert max_pixel_difference(*images) > 2


def test_a1111_chunks_keep_the_tokenizers_padding(sd2_model):
    tokenizer = CLIPTokenizer.from_pretrained(sd2_model / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(sd2_model / "text_encoder").eval()
    a1111, none = (encode_texts(tokenizer, encoder, ["a red circle"], torch.device("cpu"), s)[0]
                   for s in ("a1111", "none"))
    assert torch.equal(a1111, none)
