"""The procedural world, its captions, its tokenizer and the pixel scorer."""

from pathlib import Path

import numpy as np
import pytest
from transformers import CLIPTokenizer

from pipeline.lab.shapes.captions import describe, training_caption, words
from pipeline.lab.shapes.evaluate import PromptSpec, accuracy, colour_share, eval_specs, score_image
from pipeline.lab.shapes.vocab import save_tokenizer
from pipeline.lab.shapes.world import COLOURS, Scene, Shape, make_scenes, render


def test_same_seed_same_scenes_and_pixels() -> None:
    first, second = make_scenes(5, 20), make_scenes(5, 20)
    assert first == second
    assert make_scenes(6, 20) != first
    for a, b in zip(first, second):
        assert np.array_equal(render(a)[0], render(b)[0])


def test_scene_mix_and_captions_name_attributes() -> None:
    scenes = make_scenes(1, 400)
    two = [s for s in scenes if len(s.shapes) == 2]
    assert 0.1 < len(two) / len(scenes) < 0.4
    assert len({s.shapes[0].colour for s in scenes}) >= 6
    for scene in scenes:
        text = describe(scene)
        assert text.endswith(f"{scene.background} background")
        for shape in scene.shapes:
            assert f"{shape.size} {shape.colour} {shape.kind}" in text
            assert shape.colour != scene.background
        if scene.relation:
            assert scene.relation in text


def test_training_captions_drop_words_and_are_sometimes_empty() -> None:
    rng = np.random.default_rng(0)
    scene = make_scenes(2, 1, two_shape_share=0.0)[0]
    captions = [training_caption(scene, rng) for _ in range(1000)]
    assert 0.06 < captions.count("") / 1000 < 0.14
    assert any("background" not in c for c in captions if c)
    assert any(scene.shapes[0].size not in c.split() for c in captions if c)
    assert all(scene.shapes[0].colour in c for c in captions if c)


def test_depth_map_nearer_shape_brighter() -> None:
    far = Shape("square", "red", "large", "centre", 32, 32, 16, depth=0.4)
    near = Shape("circle", "blue", "small", "centre", 32, 32, 8, depth=0.9)
    image, depth = render(Scene("white", (near, far)))
    assert depth[32, 32] == pytest.approx(0.9) and depth[32, 20] == pytest.approx(0.4)
    assert depth[2, 2] == 0.0
    assert tuple(image[32, 32]) == COLOURS["blue"] and tuple(image[32, 20]) == COLOURS["red"]


def test_scorer_on_ground_truth_images() -> None:
    scores = []
    for scene in make_scenes(3, 300, two_shape_share=0.0):
        shape = scene.shapes[0]
        spec = PromptSpec(shape.colour, shape.kind, scene.background)
        scores.append(score_image(render(scene)[0], spec))
    for spec in eval_specs():
        shape = Shape(spec.shape, spec.colour, "large", "centre", 32.5, 31.0, 16.0, 1.0)
        scores.append(score_image(render(Scene(spec.background, (shape,)))[0], spec))
    assert all(value >= 99.0 for value in accuracy(scores).values())


def test_colour_share_counts_named_colour() -> None:
    shape = Shape("square", "red", "large", "centre", 32, 32, 16, 1.0)
    image, _ = render(Scene("blue", (shape,)))
    assert colour_share(image, "red") == pytest.approx(32 * 32 / 64**2, abs=0.02)
    assert colour_share(image, "yellow") == 0.0


def test_tokenizer_one_token_per_known_word(tmp_path: Path) -> None:
    save_tokenizer(tmp_path / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert tokenizer.model_max_length == 77
    ids = tokenizer("a red circle").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<|startoftext|>", "a</w>", "red</w>", "circle</w>", "<|endoftext|>"
    ]
    for word in words():
        assert len(tokenizer(word).input_ids) == 3, word
    assert tokenizer.unk_token_id in tokenizer("zebra").input_ids[1:-1]
