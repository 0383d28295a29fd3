"""Token merging in the UNet's self-attention (ToMe for SD, Bolya & Hoffman 2023, arXiv 2303.17604) through
tomesd, with its random partition made reproducible.

tomesd 0.1.3 patches every BasicTransformerBlock of the UNet in place. Where a block sees the tokens of the UNet's
first level with attention (full resolution for SD 1.x/2.x, tomesd's max_downsample=1 default; half for SDXL, whose
first level has none, so the default would merge nothing), the tokens are split into destinations (one per 2x2 cell) and sources;
the int(ratio x tokens) sources most similar to a destination are averaged into it before self-attention and
copied back after. Which token of each cell is the destination is random (its use_rand default; tomesd turns it
off for odd batches), drawn from args["generator"] of the UNet's _tome_info. Left alone, tomesd forks that
generator once from the global torch RNG and keeps drawing from it, so an image would depend on what ran before
it in the process. Here a wrapper of the model call (engine/model_call.py) replaces the generator at every call
with a fresh one seeded from the call's timestep (`partition_seed`): a run's partitions depend on its timesteps
alone, the same in any process, DeepCache's shallow passes included. Because tomesd draws one partition for the whole batch and skips the randomness for odd
batches, an unguided image (guidance_scale 1) can differ between odd and even batch sizes; guided batches are
always even.
"""

from __future__ import annotations

import tomesd
import torch

from pipeline.engine.conditioning import Tensors
from pipeline.engine.model_call import ModelCall

MAX_RATIO = 0.75  # tomesd's bound with 2x2 cells: at most 3 of every 4 tokens can merge


def partition_seed(timestep) -> int:
    """The seed of the random partition at one UNet call: the timestep in thousandths (timesteps may be fractional)."""
    return int(round(float(timestep) * 1000))


def first_attention_downsample(unet_config) -> int:
    """How much smaller than the latent the first level with attention blocks is: 1 for SD 1.x/2.x, 2 for SDXL."""
    levels = [i for i, kind in enumerate(unet_config.down_block_types) if "CrossAttn" in kind]
    return 2 ** levels[0] if levels else 1


def apply_token_merging(unet, ratio: float) -> None:
    """Patch the UNet in place to merge `ratio` of the tokens of its first attention level before self-attention."""
    tomesd.apply_patch(unet, ratio=ratio, max_downsample=first_attention_downsample(unet.config))


def with_token_merging(model: ModelCall, unet) -> ModelCall:
    """The call with tomesd's partition seeded from each call's timestep; the call itself when the UNet is not
    patched (performance.token_merging 0)."""
    if not hasattr(unet, "_tome_info"):
        return model

    def call(x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        unet._tome_info["args"]["generator"] = torch.Generator(x.device).manual_seed(partition_seed(t))
        return model(x, t, conditioning)

    return call
