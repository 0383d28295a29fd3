"""Benchmarks against diffusers in one run: timing, time shares, memory, FLOP rate (scripts/benchmark.py)."""
