"""The training-step benchmark runs on the tiny recipe and reports a positive time for both precisions."""

from pathlib import Path

from pipeline.lab.shapes.step_time import training_step_seconds
from pipeline.lab.shapes.train_config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_training_step_seconds_on_the_tiny_recipe():
    config = load_config(ROOT / "configs" / "train-tiny.yaml", ["unet.batch_size=2"])
    assert all(training_step_seconds(config, bf16, steps=1, warmup=1) > 0 for bf16 in (False, True))
