"""The whole caption grammar as a fixed prompt set, and its scores summed into accuracies and breakdowns."""

from dataclasses import dataclass

import numpy as np

from pipeline.lab.shapes.captions import BACKGROUND_FORMS, describe
from pipeline.lab.shapes.world import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, Scene, Shape

NAMES = list(COLOURS)


@dataclass(frozen=True)
class GrammarPrompt:
    """A Scene and which parts of it the caption names: the prompt text and the expected attributes both."""

    scene: Scene
    with_size: bool = True
    with_place: bool = True
    with_background: bool = True
    form: int = 0

    @property
    def prompt(self) -> str:
        """The caption, built by captions.describe."""
        return describe(self.scene, self.with_size, self.with_place, self.with_background, self.form)

    @property
    def left_out(self) -> str:
        """Which part the caption leaves out: 'nothing', 'size', 'place' or 'background'."""
        flags = {"size": self.with_size, "place": self.with_place, "background": self.with_background}
        return next((name for name, kept in flags.items() if not kept), "nothing")

    @property
    def form_name(self) -> str:
        """The caption form: BACKGROUND_FORMS' text, or 'no background'."""
        return BACKGROUND_FORMS[self.form] if self.with_background else "no background"


def make_shape(kind: str, colour: str, size: str, position: str) -> Shape:
    """A shape exactly at its named place and size (no jitter)."""
    cx, cy = POSITIONS[position]
    return Shape(kind, colour, size, position, cx, cy, SIZES[size], 1.0)


def _one(i: int, size: str, position: str, **parts) -> GrammarPrompt:
    """The i-th one-shape prompt: kind, colour, background and form rotated by i."""
    colour, background = NAMES[i % len(NAMES)], NAMES[(i + 1 + (i // len(NAMES)) % (len(NAMES) - 1)) % len(NAMES)]
    scene = Scene(background, (make_shape(SHAPES[i % len(SHAPES)], colour, size, position),))
    return GrammarPrompt(scene, form=i % len(BACKGROUND_FORMS), **parts)


def _two(i: int, relation: str, **parts) -> GrammarPrompt:
    """The i-th two-shape prompt: kinds, colours, sizes, background and form rotated by i."""
    first, second, background = (NAMES[(i + k) % len(NAMES)] for k in (0, 2, 4))
    sizes = list(SIZES)
    places = RELATIONS[relation]
    shapes = (make_shape(SHAPES[i % len(SHAPES)], first, sizes[i % 2], places[0]),
              make_shape(SHAPES[(i + 1 + i // len(SHAPES)) % len(SHAPES)], second, sizes[(i // 2) % 2], places[1]))
    return GrammarPrompt(Scene(background, shapes, relation), form=(i // 2) % len(BACKGROUND_FORMS), **parts)


def grammar_prompts() -> list[GrammarPrompt]:
    """The fixed set (69 prompts): one shape at every size x position with each kind (30), two shapes in every
    relation (16), and prompts leaving out the size, the place or the background (23)."""
    combos = [(size, position) for size in SIZES for position in POSITIONS]
    prompts = [_one(i, *combos[i % len(combos)]) for i in range(3 * len(combos))]
    prompts += [_two(i, relation) for i, relation in enumerate(list(RELATIONS) * 4)]
    for j, part in enumerate(("with_size", "with_place", "with_background")):
        prompts += [_one(30 + 5 * j + i, *combos[(3 * i + 1 + 5 * j) % len(combos)], **{part: False}) for i in range(5)]
    prompts += [_two(16 + i, relation, with_place=False) for i, relation in enumerate(RELATIONS)]
    prompts += [_two(20 + i, list(RELATIONS)[i], with_size=False) for i in range(2)]
    prompts += [_two(22 + i, list(RELATIONS)[2 + i], with_background=False) for i in range(2)]
    return prompts


def _percent(values: list[bool]) -> float | None:
    """Share (%) of True; None where nothing was scored."""
    return round(100.0 * float(np.mean(values)), 1) if values else None


def _group(rows: list[tuple[GrammarPrompt, dict[str, bool]]], key) -> dict[str, dict]:
    """Per value of key(prompt): images, every named attribute right (%), and each attribute (%)."""
    groups: dict[str, list[dict[str, bool]]] = {}
    for prompt, scores in rows:
        groups.setdefault(key(prompt), []).append(scores)
    out = {}
    for value, scores in groups.items():
        attributes = sorted({a for s in scores for a in s})
        out[value] = {"images": len(scores), "all_right": _percent([all(s.values()) for s in scores]),
                      **{a: _percent([s[a] for s in scores if a in s]) for a in attributes}}
    return out


def summarise(rows: list[tuple[GrammarPrompt, dict[str, bool]]]) -> dict:
    """Per-attribute accuracy, the two headline shares and the breakdowns, from (prompt, scores) per image."""
    one = [(p, s) for p, s in rows if p.scene.relation is None]
    two = [(p, s) for p, s in rows if p.scene.relation is not None]
    attributes = ["colour", "shape", "size", "position", "relation", "background"]
    return {
        "images": len(rows),
        "attributes": {a: _percent([s[a] for _, s in rows if a in s]) for a in attributes},
        "one_shape": {"images": len(one), "all_right": _percent([all(s.values()) for _, s in one]),
                      **{a: _percent([s[a] for _, s in one if a in s]) for a in attributes if a != "relation"}},
        "two_shapes": {"images": len(two),
                       "shapes_and_relation_right": _percent(
                           [s["colour"] and s["shape"] and s.get("relation", True) for _, s in two]),
                       "all_right": _percent([all(s.values()) for _, s in two]),
                       **{a: _percent([s[a] for _, s in two if a in s]) for a in attributes if a != "position"}},
        "per_size": _group(one, lambda p: p.scene.shapes[0].size),
        "per_position": _group([(p, s) for p, s in one if p.with_place], lambda p: p.scene.shapes[0].position),
        "per_relation": _group([(p, s) for p, s in two if p.with_place], lambda p: p.scene.relation),
        "per_form": _group(rows, lambda p: p.form_name),
        "per_left_out": _group(rows, lambda p: p.left_out),
    }
