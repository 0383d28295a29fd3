"""The shipped models (models/tiny-shapes and its depth and inpainting siblings) load through the normal path and
follow their prompts; bars a little under what docs/shapes-model.md measured."""

import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from pipeline.run import config, generate
from pipeline.lab.shapes.adherence import score_grammar, score_prompt_set
from pipeline.lab.shapes.evaluate import eval_specs
from pipeline.lab.shapes.grammar import grammar_prompts
from pipeline.lab.shapes.inpaint_eval import evaluate_inpaint
from pipeline.text.encoding import warn_about_prompt

ROOT = Path(__file__).resolve().parents[1]
FAMILY = [ROOT / "models" / name for name in ("tiny-shapes", "tiny-shapes-depth", "tiny-shapes-inpaint")]
# Bars a little under what each measured at seed 0 on version 2 (3-seed figures: docs/shapes-model.md). Measured:
# 18 prompts 100 / 100 / 100; the grammar subset one shape 93.3 (15 images), two shapes 87.5 (8); PNDM and LMS
# 100 / 100 / 100 each; inpaint (configs/inpaint.yaml, kept latents blended back) 100, outside change 5.45 / 255,
# seam 1.63 / 255 (6 images; 11.5 and 2.39 without the blending).
BARS = {"colour": 90.0, "background": 95.0, "shape": 85.0}
GRAMMAR_BARS = {"one_shape": 80.0, "two_shapes": 60.0}
SCHEDULER_BARS = {"pndm": 85.0, "lms": 85.0}
INPAINT_BARS = {"colour_and_shape": 80.0, "outside_change": 8.0, "seam": 2.2}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The default txt2img config, as shipped, loaded once."""
    cfg = config.load(ROOT / "configs" / "txt2img.yaml", [f"output_dir={tmp_path_factory.mktemp('out')}",
                                                          f"model.path={ROOT / 'models' / 'tiny-shapes'}"])
    plan = generate.check(cfg)
    return plan, generate.load(plan)


def sized(plan):
    """The plan's config with the size it settled on (the model's own)."""
    return OmegaConf.merge(plan.cfg, {"height": plan.height, "width": plan.width})


def test_shipped_model_follows_prompts(shipped):
    plan, components = shipped
    cfg = config.load(None, [f"{k}={v}" for k, v in {
        "model.path": plan.cfg.model.path, "scheduler.name": plan.cfg.scheduler.name, "steps": plan.cfg.steps,
        "guidance_scale": plan.cfg.guidance_scale, "height": plan.height, "width": plan.width}.items()])
    scores = score_prompt_set(components, cfg, [0])
    assert len(eval_specs()) == 18
    for key, bar in BARS.items():
        assert scores[key] >= bar, scores


def test_shipped_model_follows_the_caption_grammar(shipped):
    """Every third prompt of the grammar set (sizes, positions, relations, both caption forms, parts left out),
    seed 0, the default config (DDIM 25 steps, guidance 7.5)."""
    plan, components = shipped
    summary = score_grammar(components, sized(plan), [0], grammar_prompts()[::3])
    assert summary["one_shape"]["all_right"] >= GRAMMAR_BARS["one_shape"], summary["one_shape"]
    assert summary["two_shapes"]["shapes_and_relation_right"] >= GRAMMAR_BARS["two_shapes"], summary["two_shapes"]


@pytest.mark.parametrize("name", sorted(SCHEDULER_BARS))
def test_pndm_and_lms_work_at_the_default_guidance(shipped, name):
    """The schedulers users swap first, at guidance 7.5 and 25 steps: shapes right on the 18 prompts, seed 0."""
    plan, components = shipped
    scores = score_prompt_set(components, sized(plan), [0], scheduler={"name": name})
    assert scores["shape"] >= SCHEDULER_BARS[name] and scores["background"] >= BARS["background"], scores


def test_inpainting_sibling_repaints_inside_and_keeps_the_rest():
    """configs/inpaint.yaml as shipped (the 9-channel sibling, the kept latents blended back): six centre shapes
    repainted, seed 0. Its seam is held under a bar a little above what it measured, not under the base's with
    4-channel blending: it is not smaller than that (docs/shapes-model.md, "The inpainting sibling")."""
    cfg = config.load(ROOT / "configs" / "inpaint.yaml")
    assert Path(cfg.model.path).name == "tiny-shapes-inpaint" and cfg.blend_known
    sibling = evaluate_inpaint(cfg, 1, specs=eval_specs()[:6])
    assert sibling["unet_channels"] == 9
    assert sibling["colour_and_shape"] >= INPAINT_BARS["colour_and_shape"], sibling
    assert sibling["outside_change_without_paste_back"] < INPAINT_BARS["outside_change"], sibling
    assert sibling["seam_step"] < INPAINT_BARS["seam"], sibling


def test_default_run_writes_images(shipped, tmp_path):
    cfg = config.load(ROOT / "configs" / "txt2img.yaml", [f"output_dir={tmp_path}", "num_images=2",
                                                          f"model.path={ROOT / 'models' / 'tiny-shapes'}"])
    paths = list(generate.run(cfg, progress=False))
    assert [Image.open(p).size for p in paths] == [(64, 64), (64, 64)]


def test_unknown_words_are_named(shipped, caplog):
    _, components = shipped
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        warn_about_prompt(components.tokenizer, "a large red zebra in the centre, plaid background", "prompt")
    assert "does not know: zebra, plaid" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        warn_about_prompt(components.tokenizer, "a small yellow triangle above a green square, white background", "p")
    assert caplog.text == ""


def test_model_family_is_small_safetensors_only_and_shares_its_parts():
    """The whole shipped family, the ControlNet, the LCM-LoRA, the SDXL-format sibling and the flow-matching member
    included: 64.0 MiB measured, under 66."""
    members = [*FAMILY, *(ROOT / "models" / name for name in ("tiny-shapes-controlnet", "tiny-shapes-xl",
                                                              "tiny-shapes-flow"))]
    files = [p for folder in members for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
             and not any(parent.is_symlink() for parent in p.parents)]
    files.append(ROOT / "models" / "loras" / "tiny-shapes-lcm.safetensors")
    assert sum(p.stat().st_size for p in files) < 66 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
    for sibling in FAMILY[1:]:
        for part in ("tokenizer", "text_encoder", "vae", "scheduler"):
            assert (sibling / part).is_symlink() and (sibling / part).resolve() == (FAMILY[0] / part).resolve()
