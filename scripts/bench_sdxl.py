"""One guided SDXL step at the real UNet size (random weights), ours vs diffusers' pipeline on the same modules:
python scripts/bench_sdxl.py [config.yaml] [key=value ...] [--docs docs/benchmarks.md]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

from pipeline.lab.bench.sdxl import load_sdxl_bench, markdown, run_sdxl_bench
from pipeline.lab.bench.script import bench_main

if __name__ == "__main__":
    raise SystemExit(bench_main(__doc__, load_sdxl_bench, run_sdxl_bench, markdown))
