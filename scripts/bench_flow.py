"""SD3.5 medium's guided step at its real size (random weights), ours vs diffusers on the same modules, and FLUX.1-dev's
per-block cost and memory: python scripts/bench_flow.py [config.yaml] [key=value ...] [--docs docs/benchmarks.md]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

from pipeline.lab.bench.flow import load_flow_bench, run_flow_bench
from pipeline.lab.bench.flow_report import markdown
from pipeline.lab.bench.script import bench_main

if __name__ == "__main__":
    raise SystemExit(bench_main(__doc__, load_flow_bench, run_flow_bench, markdown))
