"""Latent-space tools: python scripts/latents.py {roundtrip,channels,interpolate,noise} CONFIG [key=value ...]."""

from pipeline.common.interrupts import quiet_start

if __name__ == "__main__":  # before the slow imports below: Ctrl-C or SIGTERM while starting exits quietly
    quiet_start()

import argparse

from pipeline.tools import latent_space as latent_tools
from pipeline.cli.tools import run_tool


def main() -> int:
    """Parse arguments, run one tool, print its numbers and the files written."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=latent_tools.COMMANDS, help="the tool to run")
    parser.add_argument("config", help="a YAML config, e.g. configs/latents.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys")
    args = parser.parse_args()

    def action() -> list[str]:
        cfg = latent_tools.load(args.config, args.overrides)
        return latent_tools.summary(latent_tools.run(args.command, cfg))

    return run_tool(action)


if __name__ == "__main__":
    raise SystemExit(main())
