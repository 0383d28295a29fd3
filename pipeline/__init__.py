"""pipeline: a hand-assembled, config-driven Stable Diffusion pipeline built from diffusers parts."""

__version__ = "0.1.0"
