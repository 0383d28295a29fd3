"""Token merging in the UNet's self-attention (ToMe for SD, Bolya & Hoffman 2023, arXiv 2303.17604) through
tomesd, with its random partition made reproducible.

tomesd 0.1.3 patches every BasicTransformerBlock of the UNet in place. Where a block sees the full-resolution
tokens (its max_downsample=1 default), the tokens are split into destinations (one per 2x2 cell) and sources;
the int(ratio x tokens) sources most similar to a destination are averaged into it before self-attention and
copied back after. Which token of each cell is the destination is random (its use_rand default; tomesd turns it
off for odd batches), drawn from args["generator"] of the UNet's _tome_info. Left alone, tomesd forks that
generator once from the global torch RNG and keeps drawing from it, so an image would depend on what ran before
it in the process. Here a forward pre-hook on the UNet replaces the generator at every call with a fresh one
seeded from the call's timestep (`partition_seed`): a run's partitions depend on its timesteps alone, the same in
any process. (DeepCache's shallow passes skip the UNet's hooks and draw on from the last full pass's generator:
deterministic too.) Because tomesd draws one partition for the whole batch and skips the randomness for odd
batches, an unguided image (guidance_scale 1) can differ between odd and even batch sizes; guided batches are
always even.
"""

from __future__ import annotations

import tomesd
import torch

MAX_RATIO = 0.75  # tomesd's bound with 2x2 cells: at most 3 of every 4 tokens can merge


def partition_seed(timestep) -> int:
    """The seed of the random partition at one UNet call: the timestep in thousandths (timesteps may be fractional)."""
    return int(round(float(timestep) * 1000))


def _seed_partition(unet, args, kwargs) -> None:
    """Forward pre-hook: a fresh generator on the sample's device, seeded from this call's timestep."""
    sample = args[0] if args else kwargs["sample"]
    timestep = args[1] if len(args) > 1 else kwargs["timestep"]
    unet._tome_info["args"]["generator"] = torch.Generator(sample.device).manual_seed(partition_seed(timestep))


def apply_token_merging(unet, ratio: float) -> None:
    """Patch the UNet in place to merge `ratio` of the full-resolution tokens before self-attention, reproducibly."""
    tomesd.apply_patch(unet, ratio=ratio)
    unet.register_forward_pre_hook(_seed_partition, with_kwargs=True)
