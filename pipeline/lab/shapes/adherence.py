"""Prompt adherence of a model on the shapes world, generated through the normal pipeline and scored by pixels."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from pipeline.models.components import Components
from pipeline.engine.schedulers import NOISE, resolve, serving
from pipeline.run.generate import check, generate_images, load
from pipeline.lab.shapes.evaluate import PromptSpec, accuracy, colour_share, eval_specs, score_image
from pipeline.lab.shapes.grammar import GrammarPrompt, grammar_prompts, summarise
from pipeline.lab.shapes.scene_score import score_scene

NEGATIVE_SPEC = PromptSpec("red", "circle", "blue")
OPEN_COLOUR_PROMPT = "a large circle in the centre, blue background"  # NEGATIVE_SPEC with the colour left out


def generate_for(components: Components, cfg: DictConfig, prompt: str, seeds: list[int], **overrides) -> list[Image.Image]:
    """Images for one prompt and its seeds, through generate_images, with config overrides."""
    run = OmegaConf.merge(cfg, {"prompt": prompt, **overrides})
    return generate_images(components, run, seeds, cfg.height, cfg.width, progress=False)


def score_prompt_set(components: Components, cfg: DictConfig, seeds: list[int], **overrides) -> dict[str, float]:
    """Accuracy (%) of foreground colour, background and shape over the fixed prompt set."""
    scores = []
    for spec in tqdm(eval_specs(), desc="prompts", leave=False):
        images = generate_for(components, cfg, spec.prompt, seeds, **overrides)
        scores += [score_image(image, spec) for image in images]
    return accuracy(scores)


def negative_prompt_effect(components: Components, cfg: DictConfig, seeds: list[int]) -> dict[str, float]:
    """What a negative prompt naming a colour does: the share of that colour's pixels when the prompt asks for it
    too, and the share of images whose shape has that colour when the prompt leaves the colour open (8 seeds for
    each given one: the open prompt's colour varies from image to image)."""
    spec = NEGATIVE_SPEC
    plain = generate_for(components, cfg, spec.prompt, seeds, negative_prompt="")
    negated = generate_for(components, cfg, spec.prompt, seeds, negative_prompt=spec.colour)
    share = lambda images: 100.0 * sum(colour_share(i, spec.colour) for i in images) / len(images)  # noqa: E731
    many = [seed + 1000 * k for seed in seeds for k in range(8)]
    shaped = lambda images: 100.0 * sum(score_image(i, spec)["colour"] for i in images) / len(images)  # noqa: E731
    return {"prompt": spec.prompt, "negative_prompt": spec.colour, "share_without": share(plain),
            "share_with": share(negated), "open_prompt": OPEN_COLOUR_PROMPT,
            "open_shapes_of_that_colour_without": shaped(generate_for(components, cfg, OPEN_COLOUR_PROMPT, many,
                                                                      negative_prompt="")),
            "open_shapes_of_that_colour_with": shaped(generate_for(components, cfg, OPEN_COLOUR_PROMPT, many,
                                                                   negative_prompt=spec.colour))}


def score_grammar(components: Components, cfg: DictConfig, seeds: list[int], prompts: list[GrammarPrompt],
                  **overrides) -> dict:
    """Scene-level scores of the caption-grammar prompt set: per attribute, headline shares and breakdowns."""
    rows = []
    for prompt in tqdm(prompts, desc="prompts", leave=False):
        for image in generate_for(components, cfg, prompt.prompt, seeds, **overrides):
            rows.append((prompt, score_scene(image, prompt.scene, prompt.with_size, prompt.with_place,
                                             prompt.with_background)))
    return summarise(rows)


def headline(summary: dict) -> dict[str, float | None]:
    """The shares a scheduler comparison looks at: one shape all right, two shapes' shapes + relation, and each
    attribute."""
    return {"one_shape_all_right": summary["one_shape"]["all_right"],
            "two_shapes_shapes_and_relation": summary["two_shapes"]["shapes_and_relation_right"],
            **summary["attributes"]}


def prepared(cfg: DictConfig, seeds_per_prompt: int):
    """The config checked and its components loaded once, the config with the size the check settled on, and the
    seeds: what every evaluation starts from."""
    plan = check(cfg)
    components = load(plan)
    cfg = OmegaConf.merge(cfg, {"height": plan.height, "width": plan.width})
    return plan, components, cfg, [cfg.seed + i for i in range(seeds_per_prompt)]


def evaluate_schedulers(cfg: DictConfig, names: list[str] | None, seeds_per_prompt: int = 3,
                        prompts: list[GrammarPrompt] | None = None) -> dict:
    """The caption grammar at the config's guidance and steps with each named scheduler (None: every one of the
    model's kind; components loaded once), and each one's largest shortfall, in points, against the reference:
    DDIM for a noise-prediction model, the config's own scheduler for a flow model."""
    kind = check(cfg).info.family.schedulers
    reference = "ddim" if kind == NOISE else resolve(cfg.scheduler.name, kind)
    names = [resolve(n, kind) for n in (list(serving(kind)) if names is None else names)]
    names = [reference, *[n for n in names if n != reference]]
    plan = [check(OmegaConf.merge(cfg, {"scheduler": {"name": name}})) for name in names][0]  # all before loading
    components = load(plan)
    cfg = OmegaConf.merge(cfg, {"height": plan.height, "width": plan.width})
    seeds = [cfg.seed + i for i in range(seeds_per_prompt)]
    prompts = grammar_prompts() if prompts is None else prompts
    rows = {name: headline(score_grammar(components, cfg, seeds, prompts, scheduler={"name": name}))
            for name in tqdm(names, desc="schedulers")}
    keys = ("one_shape_all_right", "two_shapes_shapes_and_relation")
    for row in rows.values():
        row[f"shortfall_vs_{reference}"] = max(rows[reference][k] - row[k] for k in keys)
    return {"model": cfg.model.path, "settings": {"steps": cfg.steps, "guidance_scale": cfg.guidance_scale,
            "dtype": plan.precision.name, "seeds_per_prompt": seeds_per_prompt, "prompts": len(prompts)},
            "schedulers": rows}


def evaluate(cfg: DictConfig, seeds_per_prompt: int = 3, grammar: bool = False,
             prompts: list[GrammarPrompt] | None = None) -> dict:
    """Default settings, guidance 1.0 and the negative-prompt test, on components loaded once; with `grammar`,
    the whole caption grammar (grammar_prompts(), or `prompts`) at the config's guidance and at 1.0 instead."""
    plan, components, cfg, seeds = prepared(cfg, seeds_per_prompt)
    prompts = grammar_prompts() if prompts is None else prompts
    settings = {"scheduler": cfg.scheduler.name, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale,
                "dtype": plan.precision.name, "seeds_per_prompt": seeds_per_prompt,
                "prompts": len(prompts) if grammar else len(eval_specs())}
    if grammar:
        return {"model": cfg.model.path, "settings": settings,
                "default": score_grammar(components, cfg, seeds, prompts),
                "guidance_1": score_grammar(components, cfg, seeds, prompts, guidance_scale=1.0)}
    return {
        "model": cfg.model.path,
        "settings": settings,
        "default": score_prompt_set(components, cfg, seeds),
        "guidance_1": score_prompt_set(components, cfg, seeds, guidance_scale=1.0),
        "negative_prompt": negative_prompt_effect(components, cfg, seeds),
    }


def evaluate_steps(cfg: DictConfig, counts: list[int], seeds_per_prompt: int = 3,
                   prompts: list[GrammarPrompt] | None = None) -> dict:
    """The caption grammar at the config's scheduler, guidance and add-ons with each step count (components
    loaded once): what a few-step model (the LCM-LoRA) keeps of its quality as steps fall."""
    plan, components, cfg, seeds = prepared(cfg, seeds_per_prompt)
    prompts = grammar_prompts() if prompts is None else prompts
    rows = {count: headline(score_grammar(components, cfg, seeds, prompts, steps=count))
            for count in tqdm(counts, desc="steps")}
    return {"model": cfg.model.path, "loras": [str(entry.path) for entry in cfg.loras],
            "settings": {"scheduler": cfg.scheduler.name, "guidance_scale": cfg.guidance_scale,
                         "dtype": plan.precision.name, "seeds_per_prompt": seeds_per_prompt, "prompts": len(prompts)},
            "steps": rows}
