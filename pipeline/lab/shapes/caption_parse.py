"""Reading a prompt back as a caption of the shapes world, so any prompt the shipped model understands can be scored
by pixels (the reports' adherence columns): the inverse of captions.describe."""

from __future__ import annotations

import re

from PIL import Image

from pipeline.lab.shapes.captions import PLACE_PHRASES
from pipeline.lab.shapes.grammar import GrammarPrompt, make_shape
from pipeline.lab.shapes.scene_score import score_scene
from pipeline.lab.shapes.world import COLOURS, RELATIONS, SHAPES, SIZES, Scene

_ANY = lambda names: "|".join(re.escape(n) for n in names)  # noqa: E731
NOUN = rf"a (?:({_ANY(SIZES)}) )?({_ANY(COLOURS)}) ({_ANY(SHAPES)})"
PLACES = {phrase: place for place, phrase in PLACE_PHRASES.items()}
ONE = re.compile(rf"^{NOUN}(?: ({_ANY(PLACES)}))?$")
TWO = re.compile(rf"^{NOUN} ({_ANY([*RELATIONS, 'and'])}) {NOUN}$")
BACKGROUNDS = (re.compile(rf"^(.*), ({_ANY(COLOURS)}) background$"), re.compile(rf"^(.*) on a ({_ANY(COLOURS)}) background$"))


def parse_caption(prompt: str) -> GrammarPrompt | None:
    """The scene a prompt describes and which parts it names, or None when it is not a caption of the world."""
    text, background, form = " ".join(prompt.strip().split()), None, 0
    for form, pattern in enumerate(BACKGROUNDS):
        if match := pattern.match(text):
            text, background = match.group(1), match.group(2)
            break
    if match := ONE.match(text):
        size, colour, kind, place = match.groups()
        shapes = (make_shape(kind, colour, size or "large", PLACES[place] if place else "centre"),)
        scene, relation = Scene(background or "white", shapes), None
        sized, placed = size is not None, place is not None
    elif match := TWO.match(text):
        size1, colour1, kind1, relation, size2, colour2, kind2 = match.groups()
        placed = relation != "and"  # "X and Y" names no relation: one is kept in the scene, not scored
        relation = relation if placed else "to the left of"
        places = RELATIONS[relation]
        shapes = (make_shape(kind1, colour1, size1 or "large", places[0]), make_shape(kind2, colour2, size2 or "large", places[1]))
        scene = Scene(background or "white", shapes, relation)
        sized = size1 is not None and size2 is not None
    else:
        return None
    return GrammarPrompt(scene, with_size=sized, with_place=placed, with_background=background is not None, form=form)


def adherence(image: Image.Image, prompt: str) -> dict[str, bool]:
    """Pixel scores of every attribute the prompt names ({} when it is not a caption of the shapes world)."""
    caption = parse_caption(prompt)
    if caption is None:
        return {}
    return score_scene(image, caption.scene, caption.with_size, caption.with_place, caption.with_background)
