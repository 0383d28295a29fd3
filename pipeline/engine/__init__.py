"""The engine: the one denoising loop, classifier-free guidance, schedulers, latents, non-finite checks."""
