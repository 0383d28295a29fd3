"""A run: the config schema and loader, the checks before loading, generation, outputs and processes."""
