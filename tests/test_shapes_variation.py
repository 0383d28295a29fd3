"""The world's variation beyond captions, noisy training captions, inpainting masks and the inpaint scores."""

import numpy as np

from pipeline.lab.shapes.captions import mislabelled, training_caption
from pipeline.lab.shapes.evaluate import nearest_colour, NAMES
from pipeline.lab.shapes.inpaint_eval import centre_mask, outside_change, seam_step
from pipeline.lab.shapes.inpaint_train import random_mask
from pipeline.lab.shapes.world import (
    COLOURS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    VARIATION,
    Shape,
    Variation,
    make_scenes,
    render,
    shape_mask,
)


def test_shades_jitter_but_stay_nearest_their_own_colour() -> None:
    scenes = make_scenes(4, 300, two_shape_share=0.5)
    shades = np.array([s.shade for scene in scenes for s in scene.shapes] + [sc.background_shade for sc in scenes])
    assert np.abs(shades).max() <= 20 and shades.std() > 8
    for scene in scenes[:40]:
        image = render(scene)[0]
        assert NAMES[int(nearest_colour(image[0, 0].astype(np.float32)))] == scene.background
        for shape in scene.shapes:
            x, y = int(shape.cx), int(shape.cy)
            assert NAMES[int(nearest_colour(image[y, x].astype(np.float32)))] in {sh.colour for sh in scene.shapes}
    plain = make_scenes(4, 50, variation=Variation(2.0, 1.0, 0))
    for scene in plain:
        assert tuple(render(scene)[0][0, 0]) == COLOURS[scene.background]


def test_places_and_radii_vary_within_their_bounds_and_pairs_never_move_together() -> None:
    for scene in make_scenes(8, 500, two_shape_share=0.5):
        for shape in scene.shapes:
            px, py = POSITIONS[shape.position]
            assert abs(shape.cx - px) <= 4 and abs(shape.cy - py) <= 4
        if scene.relation:
            first, second = scene.shapes
            want = np.subtract(POSITIONS[RELATIONS[scene.relation][0]], POSITIONS[RELATIONS[scene.relation][1]])
            gap = np.array([first.cx - second.cx, first.cy - second.cy])
            axis = int(np.argmax(np.abs(want)))
            assert abs(gap[axis]) >= abs(want[axis])


def test_mislabelled_captions_are_wrong_at_the_asked_rate() -> None:
    rng = np.random.default_rng(0)
    scene = make_scenes(2, 1, two_shape_share=0.0)[0]
    assert mislabelled(scene, rng, 0.0) == scene
    wrong = [mislabelled(scene, rng, 0.2).shapes[0].colour != scene.shapes[0].colour for _ in range(2000)]
    assert 0.17 < np.mean(wrong) < 0.23
    flipped = mislabelled(scene, rng, 1.0)
    assert flipped.background != scene.background and flipped.shapes[0].kind != scene.shapes[0].kind
    captions = [training_caption(scene, rng, mislabel=0.2) for _ in range(500)]
    assert any(c and scene.shapes[0].colour not in c for c in captions)


def test_swapped_captions_describe_another_scene_at_the_asked_rate() -> None:
    from pipeline.lab.shapes.unet_train import captioned_scene

    scenes = make_scenes(3, 500, two_shape_share=0.3)
    rng = np.random.default_rng(0)
    assert all(captioned_scene(scenes, i, rng, 0.0) is scenes[i] for i in range(500))
    state = rng.bit_generator.state
    captioned_scene(scenes, 0, rng, 0.0)
    assert rng.bit_generator.state == state  # no draw at 0: recipes without swapping keep their batches
    other = [captioned_scene(scenes, i % 500, rng, 0.4) is not scenes[i % 500] for i in range(3000)]
    assert 0.36 < np.mean(other) < 0.44
    assert all(captioned_scene(scenes, 7, rng, 1.0) in scenes for _ in range(20))


def test_random_masks_are_boxes_blobs_or_the_whole_image() -> None:
    rng = np.random.default_rng(1)
    masks = [random_mask(rng, 0.25) for _ in range(400)]
    full = np.mean([m.all() for m in masks])
    assert 0.18 < full < 0.32
    partial = [m for m in masks if not m.all()]
    assert all(0 < m.mean() < 0.8 for m in partial)
    boxes = [m for m in partial if m.sum() == (m.any(0).sum() * m.any(1).sum())]
    assert 0.3 < len(boxes) / len(partial) < 0.7


def test_seam_step_measures_the_step_across_the_mask_edge() -> None:
    mask = centre_mask()
    flat = np.full((64, 64, 3), 100, np.uint8)
    assert seam_step(flat, mask) == 0.0
    patched = flat.copy()
    patched[mask] = 130
    assert seam_step(patched, mask) == 30.0
    assert outside_change(patched, flat, mask) == 0.0
    assert outside_change(flat + 5, flat, mask) == 5.0


def test_the_inpaint_mask_holds_a_large_centre_shape_at_its_furthest_jitter() -> None:
    reach = SIZES["large"] + VARIATION.radius
    for kind in SHAPES:
        for dx, dy in ((1, 1), (-1, -1), (1, -1), (-1, 1)):
            centre = 32.0 + dx * VARIATION.position, 32.0 + dy * VARIATION.position
            drawn = shape_mask(Shape(kind, "red", "large", "centre", *centre, reach, 1.0))
            assert not (drawn & ~centre_mask()).any(), (kind, dx, dy)
