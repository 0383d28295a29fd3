"""The recipe's SDXL-format stage: its views are SDXL's crops and small originals, its UNet starts as the base's, and
the stage trains from an export, resumes, and exports a StableDiffusionXLPipeline folder the SDXL family loads."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionXLPipeline
from PIL import Image
from transformers import CLIPTextModel

from pipeline.common.errors import UserError
from pipeline.run import config, generate
from pipeline.lab.shapes.models import build_text_encoder, build_unet
from pipeline.lab.shapes.train import main
from pipeline.lab.shapes.train_config import load_config
from pipeline.lab.shapes.world import make_scenes, render
from pipeline.lab.shapes.xl_data import View, draw, random_view, scaled
from pipeline.lab.shapes.xl_eval import shape_centre
from pipeline.lab.shapes.xl_align import align_first_encoder, deeper_encoder, penultimate
from pipeline.lab.shapes.xl_models import encode_xl, second_encoder, xl_unet

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "train-tiny.yaml")


def test_a_view_is_a_crop_of_the_larger_scene_or_a_scaled_up_smaller_one() -> None:
    scene = make_scenes(5, 1)[0]
    assert np.array_equal(draw(scene, View()), render(scene)[0])
    larger = render(scaled(scene, 80 / 64), 80)[0]
    assert np.array_equal(draw(scene, View(80, 12, 3)), larger[12:76, 3:67])
    small = draw(scene, View(32))
    assert small.shape == (64, 64, 3) and not np.array_equal(small, render(scene)[0])
    assert View(80, 12, 3).time_ids == [80, 80, 12, 3, 64, 64]
    rng = np.random.default_rng(0)
    views = [random_view(rng, 0.4, 0.2, 96, 32) for _ in range(2000)]
    crops = [v for v in views if v.original > 64]
    assert 0.35 < len(crops) / 2000 < 0.45 and 0.15 < sum(v.original < 64 for v in views) / 2000 < 0.25
    assert all(0 <= v.top <= v.original - 64 and 0 <= v.left <= v.original - 64 for v in crops)
    wide = [random_view(rng, 1.0, 0.0, 96, 32, crop_smallest=96) for _ in range(200)]
    assert {v.original for v in wide} == {96} and max(max(v.top, v.left) for v in wide) == 32


def test_the_grown_unet_is_the_base_on_the_first_encoders_features() -> None:
    recipe = load_config(TINY)
    base = build_unet(recipe.unet, recipe.vae, recipe.text)
    first = build_text_encoder(recipe.text, 30)
    second = second_encoder(first, 8, 8)
    unet = xl_unet(base, 8, 8, 4)
    ids = torch.randint(2, 30, (2, 77))
    hidden, pooled = encode_xl((first, second), ids)
    assert hidden.shape[-1] == recipe.text.hidden_size + 8 and pooled.shape == (2, 8)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        plain = base(x, t, encoder_hidden_states=hidden[..., :recipe.text.hidden_size]).sample
        grown = unet(x, t, encoder_hidden_states=hidden,
                     added_cond_kwargs={"text_embeds": pooled, "time_ids": torch.rand(2, 6) * 96}).sample
    assert torch.equal(plain, grown)



def test_the_first_encoder_puts_the_bases_last_layer_at_the_penultimate_place_then_fits_its_features() -> None:
    """SDXL's pipelines read the penultimate hidden states (no final layer norm); the base's UNet read the last,
    normed ones: the deeper encoder's extra layer is an identity, and the fitting brings its penultimate states to
    the base's features."""
    base = build_text_encoder(load_config(TINY).text, 30).eval()
    ids = torch.randint(2, 30, (4, 77))
    deeper = deeper_encoder(base).eval()
    with torch.no_grad():
        states = base(ids, output_hidden_states=True)
        assert torch.equal(penultimate(deeper, ids), states.hidden_states[-1])
        assert torch.allclose(deeper(ids).last_hidden_state, states.last_hidden_state, atol=1e-6)
    fitted, before, after = align_first_encoder(base, lambda step: torch.randint(2, 30, (8, 77)), 30, 2e-3)
    assert after < 0.5 * before
    with torch.no_grad():
        assert F.mse_loss(penultimate(fitted, ids), states.last_hidden_state) < 0.5 * F.mse_loss(
            penultimate(deeper, ids), states.last_hidden_state)

def test_the_stage_trains_from_an_export_resumes_and_loads_as_sdxl(tmp_path: Path, monkeypatch) -> None:
    export, xl = tmp_path / "model", tmp_path / "xl"
    common = [TINY, f"run_dir={tmp_path / 'run'}", f"export_dir={export}", f"xl.export_dir={xl}",
              "export_dtype=float16"]
    main(common + ["until=export"])
    main(common + ["after=lcm", "until=xl", "xl.steps=1"])
    main(common + ["after=lcm", "until=xl", "xl.steps=2"])  # resumes from step 1
    assert torch.load(tmp_path / "run" / "xl" / "state.pt", weights_only=False)["step"] == 2
    index = json.loads((xl / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and index["force_zeros_for_empty_prompt"] is False
    for part, base_part in (("tokenizer", "tokenizer"), ("tokenizer_2", "tokenizer"), ("vae", "vae"),
                            ("scheduler", "scheduler")):
        assert (xl / part).is_symlink() and (xl / part).resolve() == (export / base_part).resolve()
    assert CLIPTextModel.from_pretrained(xl / "text_encoder").dtype == torch.float32
    StableDiffusionXLPipeline.from_pretrained(xl)  # diffusers' own loader takes the folder as it is
    monkeypatch.chdir(ROOT)
    cfg = config.load(ROOT / "configs" / "sdxl.yaml", [f"model.path={xl}", "steps=2", "num_images=1",
                                                       f"output_dir={tmp_path / 'out'}", "crops_coords_top_left=[8,0]",
                                                       "height=64", "width=64", "scheduler.name=ddim"])
    [path] = generate.run(cfg, progress=False)
    assert Image.open(path).size == (64, 64)


def test_views_that_cannot_be_drawn_are_one_sentence() -> None:
    with pytest.raises(UserError, match="xl.crop_share and xl.small_share must be chances"):
        load_config(TINY, ["xl.crop_share=0.8", "xl.small_share=0.3"])
    with pytest.raises(UserError, match="xl.smallest must be under 64 and xl.crop_smallest over it, at most xl"):
        load_config(TINY, ["xl.largest=64"])
    with pytest.raises(UserError, match="xl.crop_smallest over it"):
        load_config(TINY, ["xl.crop_smallest=97"])


def test_the_crop_measure_finds_a_shape_where_a_crop_view_moved_it() -> None:
    """What the crop measurement reads (xl_eval.shape_centre) on the views the stage trains on: a crop of (top, left)
    from a 96-pixel original moves the shape's centre by (-left, -top) from the uncropped 96-pixel view's."""
    scene = next(s for s in make_scenes(11, 40, 0.0) if s.shapes[0].position == "centre")
    colour = scene.shapes[0].colour
    x0, y0 = shape_centre(draw(scene, View(96, 0, 0)), colour)
    x1, y1 = shape_centre(draw(scene, View(96, 8, 16)), colour)
    assert abs((x1 - x0) + 16) <= 1 and abs((y1 - y0) + 8) <= 1
