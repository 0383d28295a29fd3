"""English captions of world scenes: the full description and the randomly thinned training form."""

import dataclasses

import numpy as np

from pipeline.lab.shapes.world import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, Scene, Shape

PLACE_PHRASES: dict[str, str] = {
    "centre": "in the centre",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}
BACKGROUND_FORMS: tuple[str, ...] = ("{text}, {bg} background", "{text} on a {bg} background")


def words() -> list[str]:
    """Every word a caption can use, in a fixed order (the tokenizer's vocabulary)."""
    phrases = [*COLOURS, *SHAPES, *SIZES, *PLACE_PHRASES.values(), *RELATIONS, "and"]
    phrases += [form.format(text="a", bg="background") for form in BACKGROUND_FORMS]
    found: list[str] = []
    for phrase in phrases:
        for word in phrase.replace(",", " , ").split():
            if word not in found:
                found.append(word)
    return found


def _noun_phrase(shape: Shape, with_size: bool) -> str:
    """'a large red circle' or, without the size, 'a red circle'."""
    size = f"{shape.size} " if with_size else ""
    return f"a {size}{shape.colour} {shape.kind}"


def describe(
    scene: Scene, with_size: bool = True, with_place: bool = True, with_background: bool = True,
    form: int = 0,
) -> str:
    """Caption a scene, optionally leaving out sizes, placement and background."""
    first = _noun_phrase(scene.shapes[0], with_size)
    if scene.relation is None:
        text = f"{first} {PLACE_PHRASES[scene.shapes[0].position]}" if with_place else first
    else:
        second = _noun_phrase(scene.shapes[1], with_size)
        text = f"{first} {scene.relation} {second}" if with_place else f"{first} and {second}"
    if not with_background:
        return text
    return BACKGROUND_FORMS[form].format(text=text, bg=scene.background)


def _other(rng: np.random.Generator, value: str, choices: list[str], share: float) -> str:
    """`value`, or with chance `share` another of `choices`."""
    if rng.random() >= share:
        return value
    return str(rng.choice([c for c in choices if c != value]))


def mislabelled(scene: Scene, rng: np.random.Generator, share: float) -> Scene:
    """The scene as a careless captioner describes it: each attribute (colour, kind, size, place of each
    shape, the relation, the background) named wrongly with chance `share`, as web captions are noisy."""
    if share <= 0:
        return scene
    shapes = tuple(
        dataclasses.replace(
            shape, colour=_other(rng, shape.colour, list(COLOURS), share),
            kind=_other(rng, shape.kind, list(SHAPES), share),
            size=_other(rng, shape.size, list(SIZES), share),
            position=_other(rng, shape.position, list(POSITIONS), share),
        )
        for shape in scene.shapes
    )
    relation = None if scene.relation is None else _other(rng, scene.relation, list(RELATIONS), share)
    background = _other(rng, scene.background, list(COLOURS), share)
    return dataclasses.replace(scene, shapes=shapes, relation=relation, background=background)


def training_caption(
    scene: Scene, rng: np.random.Generator, drop: float = 0.3, empty: float = 0.1, mislabel: float = 0.0
) -> str:
    """A training caption: empty with chance `empty` (for guidance), else with parts dropped and, with
    chance `mislabel` per attribute, a wrong word."""
    if rng.random() < empty:
        return ""
    scene = mislabelled(scene, rng, mislabel)
    keep = rng.random(3) >= drop
    form = int(rng.integers(len(BACKGROUND_FORMS)))
    return describe(scene, bool(keep[0]), bool(keep[1]), bool(keep[2]), form)
