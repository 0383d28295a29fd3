"""The command line: one error and exit-code path for every script."""
