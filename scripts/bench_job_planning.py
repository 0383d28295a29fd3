"""Seconds to plan (check every line of) jobs of 1,000, 10,000 and 100,000 prompt lines, then to the job's first
image, with the CPU it ran on: python scripts/bench_job_planning.py [--model models/tiny-shapes] [--lines N ...]

Planning is everything a job does before it loads the model: reading the prompts file, checking each line, naming
its images and fingerprinting the job. "First image" runs the job (25 steps) until its first image is written, the
planning included; "stop" is what stopping it then costs (job.json and index.html rewritten for every line). Each
job's prompts file and output folder are made in a temp folder.
"""

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.tools import jobs
from pipeline.lab.bench.measure import cpu_description, describe_cpu
from pipeline.tools.jobs.run import plan_job, run_job


def job_config(model: str, lines: int, folder: Path):
    """A .txt job of `lines` distinct prompts on the model, on the CPU at the default model.dtype (auto)."""
    prompts = folder / f"prompts-{lines}.txt"
    prompts.write_text("".join(f"a red circle above a blue square, number {i}\n" for i in range(lines)))
    return jobs.load(None, [f"model.path={model}", "model.device=cpu", "seed=0", "steps=25",
                            f"prompts_file={prompts}", f"output_dir={folder / f'out-{lines}'}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/tiny-shapes")
    parser.add_argument("--lines", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--plan-only", action="store_true", help="time the planning alone")
    args = parser.parse_args()
    print(describe_cpu(cpu_description()))
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.lines:
            cfg = job_config(args.model, lines, Path(folder))
            started = time.perf_counter()
            plan_job(cfg)
            planned = time.perf_counter() - started
            report = f"{lines} lines: planned in {planned:.2f} s ({planned / lines * 1000:.2f} ms a line)"
            if not args.plan_only:
                started = time.perf_counter()
                run = run_job(cfg, progress=False)
                next(run)
                first = time.perf_counter() - started
                run.close()  # stopped after the first image: the manifest and the report are written
                report += f"; first image after {first:.2f} s; stop {time.perf_counter() - started - first:.2f} s"
            print(report, flush=True)


if __name__ == "__main__":
    main()
