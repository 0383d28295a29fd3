"""The model call for SD3's transformer (SD3Transformer2DModel): the bundle's hidden states and pooled text become
its encoder_hidden_states and pooled_projections, the timestep one per latent, as StableDiffusion3Pipeline calls it."""

from __future__ import annotations

import torch

from pipeline.engine.conditioning import Tensors

POOLED = "pooled_projections"


class SD3Call:
    """`model(x, t, conditioning)` for an SD3 transformer."""

    def __init__(self, transformer):
        self.transformer = transformer

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The transformer's velocity prediction for x at t."""
        unknown = set(conditioning) - {"hidden_states", POOLED}
        if unknown:
            raise ValueError(f"an SD3 transformer takes no conditioning named {', '.join(sorted(unknown))}")
        return self.transformer(hidden_states=x, timestep=t.expand(len(x)),
                                encoder_hidden_states=conditioning["hidden_states"],
                                pooled_projections=conditioning[POOLED], return_dict=False)[0]
