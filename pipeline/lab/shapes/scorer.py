"""The shapes world's scorer for the reports (pipeline/tools/scoring.py), installed through the `pipeline.scorers`
entry point: adherence to whatever a caption of the world names, and for an evaluation prompt evaluate.py's scores."""

from __future__ import annotations

from typing import Any, Optional

from PIL import Image

from pipeline.lab.shapes.caption_parse import adherence
from pipeline.lab.shapes.evaluate import PromptSpec, colour_share, score_image
from pipeline.lab.shapes.world import COLOURS, SHAPES
from pipeline.tools.scoring import Scorer

ADHERENCE = ("adherence", "missed")
EVALUATION = ("score_colour", "score_background", "score_shape", "colour_share")


def spec_for_prompt(prompt: str) -> Optional[PromptSpec]:
    """The evaluation spec whose prompt this is ('a large red circle in the centre, blue background'), or None."""
    for colour in COLOURS:
        for shape in SHAPES:
            for background in COLOURS:
                spec = PromptSpec(colour, shape, background)
                if background != colour and spec.prompt == prompt.strip():
                    return spec
    return None


def adherence_fields(named: dict[str, bool]) -> dict[str, Any]:
    """'adherence' (share of the named attributes shown) and 'missed' (their names), or nothing to report."""
    if not named:
        return {}
    return {"adherence": round(sum(named.values()) / len(named), 3),
            "missed": " ".join(key for key, ok in named.items() if not ok)}


def shapes_scores(image: Image.Image, prompt: str) -> Optional[dict[str, Any]]:
    """Adherence to what the prompt names when it is a caption of the shapes world (the share of its attributes the
    pixels show, and which missed), plus, for an evaluation prompt, evaluate.py's scores and the share of the
    asked-for colour; None for any other prompt."""
    scores = adherence_fields(adherence(image, prompt) if prompt else {})
    spec = spec_for_prompt(prompt)
    if spec is not None:
        scores.update({f"score_{key}": value for key, value in score_image(image, spec).items()})
        scores["colour_share"] = round(colour_share(image, spec.colour), 4)
    return scores or None


SCORER = Scorer(ADHERENCE + EVALUATION, shapes_scores, page_columns=ADHERENCE)
