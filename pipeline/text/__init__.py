"""Text to conditioning: prompt syntaxes (a1111, compel, none), CLIP encoding, clip skip, prompt tags."""
