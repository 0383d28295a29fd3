"""Common helpers every layer may use: user errors, limits, quiet building, reading user files and images. Imports no other pipeline module."""
