"""Feature caching across steps (DeepCache, Ma et al. 2023, arXiv 2312.00858), at the granularity of UNet blocks.

A full pass runs the UNet as it is and keeps the deep feature: the hidden state that enters the shallow up blocks
up_blocks[-(branch + 1):], i.e. the output of the up block just deeper than them (the mid block's output when the
shallow branch is every block). The passes in between run only conv_in, down_blocks[:branch + 1] (fresh skip
connections), the shallow up blocks on the kept feature, and conv_norm_out/act/conv_out. DeepCache's own code picks
the branch inside a block (its SD default recomputes one down layer and two up layers); this module cuts at block
boundaries, so branch 0 recomputes the whole outermost down and up block.
"""

from __future__ import annotations

from typing import Any

import torch

from pipeline.engine.conditioning import Tensors


def deep_module(unet, branch: int) -> torch.nn.Module:
    """The block whose output is the cached deep feature: the up block just deeper than the shallow ones."""
    deeper = len(unet.up_blocks) - branch - 2
    return unet.up_blocks[deeper] if deeper >= 0 else unet.mid_block


def full_pass(unet, branch: int, sample, timestep, arguments: dict[str, Any]):
    """The plain UNet call (with the model call's `arguments`), returning its output and the deep feature it computed
    on the way."""
    kept = []
    handle = deep_module(unet, branch).register_forward_hook(lambda module, args, output: kept.append(output))
    try:
        out = unet(sample, timestep, **arguments, return_dict=False)[0]
    finally:
        handle.remove()
    return out, kept[0]


def _embeddings(unet, sample, timestep, arguments: dict[str, Any]):
    """The time embedding and the context as UNet2DConditionModel.forward prepares them (through its own helpers)."""
    context, added = arguments["encoder_hidden_states"], arguments.get("added_cond_kwargs") or {}
    emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), arguments.get("timestep_cond"))
    aug = unet.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added)
    emb = emb + aug if aug is not None else emb
    if unet.time_embed_act is not None:
        emb = unet.time_embed_act(emb)
    return emb, unet.process_encoder_hidden_states(encoder_hidden_states=context, added_cond_kwargs=added)


def _call_block(block, hidden_states, emb, context, **kwargs):
    """One down or up block called as the UNet calls it: with the context only if it has cross-attention."""
    if getattr(block, "has_cross_attention", False):
        kwargs["encoder_hidden_states"] = context
    return block(hidden_states=hidden_states, temb=emb, **kwargs)


def shallow_pass(unet, branch: int, feature, sample, timestep, arguments: dict[str, Any]) -> torch.Tensor:
    """The UNet's output with the deep feature taken from a full pass: only the shallow blocks are run."""
    emb, context = _embeddings(unet, sample, timestep, arguments)
    factor = 2**unet.num_upsamplers
    forward_size = any(side % factor for side in sample.shape[-2:])
    if unet.config.center_input_sample:
        sample = 2 * sample - 1.0
    hidden = unet.conv_in(sample)
    skips = (hidden,)
    for block in unet.down_blocks[: branch + 1]:
        hidden, res = _call_block(block, hidden, emb, context)
        skips += res
    shallow = unet.up_blocks[len(unet.up_blocks) - branch - 1 :]
    skips = skips[: sum(len(block.resnets) for block in shallow)]
    hidden, upsample_size = feature, None
    for i, block in enumerate(shallow):
        res, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
        if i < len(shallow) - 1 and forward_size:
            upsample_size = skips[-1].shape[2:]
        hidden = _call_block(block, hidden, emb, context, res_hidden_states_tuple=res, upsample_size=upsample_size)
    if unet.conv_norm_out is not None:
        hidden = unet.conv_act(unet.conv_norm_out(hidden))
    return unet.conv_out(hidden)


class DeepCacheUNet:
    """A model call around a UNet's (models/unet_call.UNetCall); call i is a full pass when i % interval == 0 or the
    batch's shapes changed.

    One instance serves one batch's denoising (generate_images makes a fresh one), so its call count is the step
    index. The kept feature is tied to the shapes of the call that made it: a change of batch (guidance_cutoff
    dropping the unconditional half) forces a full pass.
    """

    def __init__(self, call, interval: int, branch: int):
        self.call, self.interval, self.branch = call, interval, branch
        self.calls, self.key, self.feature = 0, None, None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The UNet's output for this step, from a full or a shallow pass."""
        key = (x.shape, x.dtype, x.device, tuple((name, c.shape) for name, c in sorted(conditioning.items())))
        step, self.calls = self.calls, self.calls + 1
        unet, arguments = self.call.unet, self.call.arguments(x, conditioning)
        if step % self.interval == 0 or key != self.key:
            out, self.feature = full_pass(unet, self.branch, x, t, arguments)
            self.key = key
            return out
        return shallow_pass(unet, self.branch, self.feature, x, t, arguments)


def with_deepcache(call, interval: int, branch: int):
    """The UNet's model call itself when interval is 1, else a fresh DeepCacheUNet around it."""
    return call if interval == 1 else DeepCacheUNet(call, interval, branch)
