"""The conditioning bundle: everything a denoiser is conditioned on, for each half of classifier-free guidance.

A half is a mapping of names to tensors batched over the images (first dimension). Every text family gives
`hidden_states`; a family or a control adds its own names (SDXL's `text_embeds` and `time_ids`, a distilled model's
`timestep_cond`, IP-Adapter's `image_embeds`), and the denoiser it feeds maps the names to its arguments. The loop
only asks for the batch of a step: both halves joined (unconditional first, as diffusers batches them) or the
conditional half alone. (The idea of conditioning as named parts beside the tensor follows ComfyUI, whose text
encode node returns the pooled output in a dict beside the hidden states.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Conditioning:
    """The conditional half, and the unconditional one when classifier-free guidance runs."""

    cond: Tensors
    uncond: Optional[Tensors] = None

    def __post_init__(self) -> None:
        """Both halves name the same tensors, so they can be joined name by name."""
        if self.uncond is not None and set(self.uncond) != set(self.cond):
            raise ValueError(f"the halves of a conditioning differ: {sorted(self.cond)} vs {sorted(self.uncond)}")

    @property
    def guided(self) -> bool:
        """Whether there is an unconditional half to guide with."""
        return self.uncond is not None

    def batch(self, guided: bool) -> Tensors:
        """The tensors of one step: [uncond, cond] joined along the batch when guided (and there is an unconditional
        half), else the conditional half."""
        if not guided or self.uncond is None:
            return self.cond
        return {name: torch.cat([self.uncond[name], tensor]) for name, tensor in self.cond.items()}

    def map(self, change: Callable[[str, torch.Tensor], torch.Tensor]) -> "Conditioning":
        """A bundle with `change(name, tensor)` applied to every tensor of both halves."""
        uncond = {n: change(n, t) for n, t in self.uncond.items()} if self.uncond is not None else None
        return Conditioning({n: change(n, t) for n, t in self.cond.items()}, uncond)

    def repeat(self, count: int) -> "Conditioning":
        """The bundle of one image repeated for `count` images."""
        return self.map(lambda name, t: t.repeat(count, *[1] * (t.ndim - 1)))

    def padded(self, length: int, empty: Tensors) -> "Conditioning":
        """Both halves' hidden states grown to `length` tokens with copies of an empty text's (A1111 pads a shorter
        prompt with empty chunks so), or with zeros for a half that is zeros (SDXL's empty negative prompt); the
        other names, one row per image, stay as they are."""

        def grow(name: str, tensor: torch.Tensor) -> torch.Tensor:
            missing = (length - tensor.shape[1]) // empty[name].shape[1] if name == "hidden_states" else 0
            if missing <= 0:
                return tensor
            chunk = empty[name] if tensor.any() else torch.zeros_like(empty[name])
            return torch.cat([tensor, chunk.repeat(len(tensor), missing, 1)], dim=1)

        return self.map(grow)

    def with_cond(self, cond: Tensors) -> "Conditioning":
        """The same unconditional half beside another conditional one (a frame between two prompts)."""
        return Conditioning(cond, self.uncond)
