"""Config layering: schema defaults <- base.yaml <- task file <- command line; strict keys; safe YAML."""

import re

import pytest

from pathlib import Path

from pipeline.run import config
from pipeline.common.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_layers_override_in_order(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 10\nseed: 1\nscheduler:\n  name: lms\n")
    task = tmp_path / "task.yaml"
    task.write_text("steps: 20\nprompt: from the file\n")
    cfg = config.load(task, ["seed=9", "scheduler.options.use_karras_sigmas=true"])
    assert (cfg.steps, cfg.seed, cfg.prompt, cfg.scheduler.name) == (20, 9, "from the file", "lms")
    assert cfg.scheduler.options == {"use_karras_sigmas": True}
    assert cfg.guidance_scale == 7.5  # the schema's default


def test_string_keys_keep_the_raw_text():
    cfg = config.load(None, ["prompt=yes", "negative_prompt=123"])
    assert cfg.prompt == "yes" and cfg.negative_prompt == "123"


def test_yaml_is_loaded_safely(tmp_path):
    task = tmp_path / "evil.yaml"
    task.write_text("prompt: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(task)


def test_file_must_be_a_mapping(tmp_path):
    task = tmp_path / "list.yaml"
    task.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        config.load(task)


def test_shipped_configs_load():
    for name in ("txt2img",):
        cfg = config.load(ROOT / "configs" / f"{name}.yaml")
        assert cfg.task == name and cfg.prompt


def test_a_key_inside_a_list_entry_can_be_overridden():
    """`controlnets.0.image=map.png` sets the first entry's key, as Hydra's overrides do; a missing entry or a wrong
    key or value is one sentence naming the override."""
    cfg = config.load(ROOT / "configs" / "controlnet.yaml", ["controlnets.0.image=map.png", "controlnets.0.weight=0.5"])
    assert cfg.controlnets[0].image == "map.png" and cfg.controlnets[0].weight == 0.5
    assert cfg.controlnets[0].path == "models/tiny-shapes-controlnet"  # the entry's other keys are kept
    for override, expected in (("controlnets.1.weight=0.5", "'controlnets' has no entry 1 (1 listed)"),
                               ("loras.0.weight=0.5", "'loras' has no entry 0 (0 listed)"),
                               ("controlnets.0.weight=abc", "could not be converted to Float"),
                               ("controlnets.0.wieght=1", "Key 'wieght' not in 'ControlNetEntry'")):
        with pytest.raises(UserError, match=re.escape(expected)):
            config.load(ROOT / "configs" / "controlnet.yaml", [override])
