"""English captions of world scenes: the full description and the randomly thinned training form."""

import numpy as np

from pipeline.shapes.world import COLOURS, RELATIONS, SHAPES, SIZES, Scene, Shape

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


def training_caption(
    scene: Scene, rng: np.random.Generator, drop: float = 0.3, empty: float = 0.1
) -> str:
    """A training caption: empty with chance `empty` (for guidance), else with parts dropped."""
    if rng.random() < empty:
        return ""
    keep = rng.random(3) >= drop
    form = int(rng.integers(len(BACKGROUND_FORMS)))
    return describe(scene, bool(keep[0]), bool(keep[1]), bool(keep[2]), form)
