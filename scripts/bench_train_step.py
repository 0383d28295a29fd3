"""Seconds per UNet training step of a recipe, in bfloat16 autocast and float32, with the CPU it ran on:
python scripts/bench_train_step.py configs/train.yaml [key=value ...]"""

import sys

import torch

from pipeline.lab.bench.measure import cpu_description, describe_cpu
from pipeline.lab.shapes.step_time import training_step_seconds
from pipeline.lab.shapes.train_config import load_config


def main() -> None:
    config = load_config(sys.argv[1], sys.argv[2:])
    torch.set_num_threads(config.threads)
    print(describe_cpu(cpu_description()))
    for name, bf16 in (("bfloat16 autocast", True), ("float32", False)):
        print(f"{name}: {training_step_seconds(config, bf16):.3f} s/step at batch {config.unet.batch_size}")


if __name__ == "__main__":
    main()
