"""Config layering: schema defaults <- base.yaml <- task file <- command line; strict keys; safe YAML."""

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
