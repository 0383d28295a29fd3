"""ControlNet (Zhang et al., 2023): a copy of the UNet's encoder that reads a control image and adds its residuals to
the UNet's skip connections and middle block, run as diffusers' ControlNet pipelines run it (their prepare_image,
controlnet_keep, guess mode and MultiControlNetModel's sum)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch
from diffusers import ControlNetModel
from diffusers.image_processor import VaeImageProcessor
from omegaconf import DictConfig

from pipeline.controls.controlnet_check import check_entries, picture_of
from pipeline.controls.controlnet_file import config_source
from pipeline.controls.depth_map import estimator_source
from pipeline.controls.preprocess import CANNY_THRESHOLDS, control_map, inpaint_condition
from pipeline.engine.conditioning import Tensors
from pipeline.engine.loop import LoopSetup
from pipeline.engine.model_call import ModelCall
from pipeline.models.components import Components
from pipeline.models.depth_estimator import load_estimator
from pipeline.models.inspect import ModelInfo

Residuals = tuple[list[torch.Tensor], torch.Tensor]  # down blocks' and the mid block's


class Unit(NamedTuple):
    """One entry's loaded ControlNet, and its depth estimator and image processor (preprocessor depth only)."""

    model: ControlNetModel
    estimator: Optional[tuple[Any, Any]]
DOWN, MID = "down_block_additional_residuals", "mid_block_additional_residual"


def check(cfg: DictConfig, info: ModelInfo, size: tuple[int, int]) -> None:
    """Each entry's numbers, preprocessor, ControlNet config (against the model's UNet) and control image, for a run
    of (width, height) `size`."""
    check_entries(cfg, info, size)


def load(cfg: DictConfig, info: ModelInfo, components: Components) -> list[Unit]:
    """The entries' ControlNets (a folder or hub id, or a single file with its config or the shipped one of its
    layout) on the components' device and dtype, in evaluation mode, each with its depth estimator and image
    processor where its preprocessor is depth."""
    units = []
    for n, entry in enumerate(cfg.controlnets):
        if Path(entry.path).is_file():
            model = ControlNetModel.from_single_file(entry.path, config=config_source(entry, f"controlnets[{n}]"),
                                                     torch_dtype=components.dtype)
        else:
            model = ControlNetModel.from_pretrained(entry.path, torch_dtype=components.dtype)
        source = estimator_source(entry, f"controlnets[{n}]", info, cfg.model.allow_pickle)
        estimator = load_estimator(source, components.device, components.dtype, cfg.model.allow_pickle) \
            if source else None
        units.append(Unit(model.to(components.device).eval(), estimator))
    return units


def control_tensor(entry: Any, key: str, ctx: Any, unit: Unit) -> torch.Tensor:
    """One image's control map at the run's size in [0, 1] (masked pixels -1 for inpaint), as diffusers'
    prepare_image makes it (a VaeImageProcessor that converts to RGB and does not normalise)."""
    factor = 2 ** (len(ctx.components.vae.config.block_out_channels) - 1)
    processor = VaeImageProcessor(vae_scale_factor=factor, do_convert_rgb=True, do_normalize=False)
    path = picture_of(entry, ctx.cfg)
    source = inpaint_condition(path, ctx.cfg.mask, key, (ctx.width, ctx.height)) if entry.preprocessor == "inpaint" \
        else control_map(path, entry.preprocessor, key, unit.estimator)
    image = processor.preprocess(source, height=ctx.height, width=ctx.width)
    return image.to(torch.float32).to(device=ctx.device, dtype=unit.model.dtype)


def kept(i: int, steps: int, start: float, end: float) -> bool:
    """Whether step i of `steps` lies in the entry's window (diffusers' controlnet_keep)."""
    return not (i / steps < start or (i + 1) / steps > end)


def residuals_of(model: ControlNetModel, entry: Any, image: torch.Tensor, x: torch.Tensor, t: torch.Tensor,
                 conditioning: Tensors, guided: bool) -> Residuals:
    """One ControlNet's residuals for the batch x; in guess mode with guidance it reads the conditional half only
    and adds zeros to the unconditional half (StableDiffusionControlNetPipeline's guess mode)."""
    guess = entry.guess_mode or bool(model.config.global_pool_conditions)
    half = guess and guided
    names = ("hidden_states", "text_embeds", "time_ids")
    given = {name: conditioning[name] for name in names if name in conditioning}
    if half:
        x, given = x.chunk(2)[1], {name: tensor.chunk(2)[1] for name, tensor in given.items()}
    repeat = 1 if half or not guided else 2
    added = {name: given[name] for name in ("text_embeds", "time_ids") if name in given}
    down, mid = model(x, t, encoder_hidden_states=given["hidden_states"], controlnet_cond=torch.cat([image] * repeat),
                      conditioning_scale=float(entry.weight), guess_mode=guess,
                      added_cond_kwargs=added or None, return_dict=False)
    if half:
        down = [torch.cat([torch.zeros_like(d), d]) for d in down]
        mid = torch.cat([torch.zeros_like(mid), mid])
    return list(down), mid


def summed(total: Optional[Residuals], more: Residuals) -> Residuals:
    """Two ControlNets' residuals added block by block (MultiControlNetModel's order)."""
    if total is None:
        return more
    return [a + b for a, b in zip(total[0], more[0])], total[1] + more[1]


def wrap(call: ModelCall, units: list[Unit], ctx: Any, setup: LoopSetup) -> ModelCall:
    """The model call with every ControlNet's residuals (summed) added to the conditioning, for the steps in each
    entry's window. The loop calls the model once per step, so the k-th call is step k of setup.timesteps."""
    entries = list(ctx.cfg.controlnets)
    count, steps = len(ctx.generators), len(setup.timesteps)
    images = [control_tensor(entry, f"controlnets[{n}]", ctx, unit)
              .repeat_interleave(count, dim=0) for n, (entry, unit) in enumerate(zip(entries, units))]
    calls = [0]

    def controlled(x: torch.Tensor, t: torch.Tensor, conditioning: Tensors) -> torch.Tensor:
        """The inner call with the residuals of the ControlNets whose window holds this step."""
        i, calls[0] = calls[0], calls[0] + 1
        total = None
        for unit, entry, image in zip(units, entries, images):
            if kept(i, steps, entry.start, entry.end):
                total = summed(total, residuals_of(unit.model, entry, image, x, t, conditioning, len(x) == 2 * count))
        if total is None:
            return call(x, t, conditioning)
        return call(x, t, {**conditioning, DOWN: total[0], MID: total[1]})

    return controlled


def fields(cfg: DictConfig) -> dict[str, str]:
    """sd-webui-controlnet's PNG fields, one quoted unit per ControlNet (a file's model named without its suffix)."""
    result = {}
    for n, entry in enumerate(cfg.controlnets):
        path = Path(entry.path)
        parts = {"Module": entry.preprocessor, "Model": path.stem if path.is_file() else path.name,
                 "Weight": entry.weight, "Resize Mode": "Just Resize"}
        if entry.preprocessor == "canny":
            parts.update({"Threshold A": CANNY_THRESHOLDS[0], "Threshold B": CANNY_THRESHOLDS[1]})
        parts.update({"Guidance Start": entry.start, "Guidance End": entry.end,
                      "Control Mode": "ControlNet is more important" if entry.guess_mode else "Balanced"})
        result[f"ControlNet {n}"] = '"' + ", ".join(f"{k}: {v}" for k, v in parts.items()) + '"'
    return result
