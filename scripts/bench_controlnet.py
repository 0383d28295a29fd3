"""What a ControlNet costs per step: one guided step with it and without it, ours vs diffusers' pipelines on the same
modules (SD 1.5 shapes, random weights, float32), interleaved:
python scripts/bench_controlnet.py [config.yaml] [key=value ...] [--docs docs/benchmarks.md] [--json result.json]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

from pipeline.lab.bench.controlnet import load_controlnet_bench, markdown, run_controlnet_bench
from pipeline.lab.bench.script import bench_main

if __name__ == "__main__":
    raise SystemExit(bench_main(__doc__, load_controlnet_bench, run_controlnet_bench, markdown))
