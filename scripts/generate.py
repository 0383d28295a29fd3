"""Generate images from a YAML config, or many from a job (prompts or prompts_file): python scripts/generate.py CONFIG [key=value ...]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse

from pipeline.cli.main import run_cli


def main() -> int:
    """Parse arguments and hand them to the generation run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?", help="a YAML config, e.g. configs/txt2img.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys")
    parser.add_argument("--list-schedulers", action="store_true", help="print the scheduler registry and exit")
    args = parser.parse_args()
    return run_cli(args.config, args.overrides, args.list_schedulers)


if __name__ == "__main__":
    raise SystemExit(main())
