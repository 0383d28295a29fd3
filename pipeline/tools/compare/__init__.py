"""Comparisons: one prompt and seed over schedulers x steps (x guidance), or over any keys (X/Y/Z)."""
