"""What a model family is: its named parts, how its text becomes conditioning, and its denoiser's model call.

A family is data plus three functions, so the loader, the add-ons, the weight checks and the single-file reader ask
it instead of assuming one CLIP; the loop never learns a family's name (docs/extending.md, "Adding a model family").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from pipeline.engine.conditioning import Conditioning
from pipeline.engine.model_call import ModelCall
from pipeline.engine.schedulers import NOISE
from pipeline.text.syntaxes import SYNTAXES


@dataclass(frozen=True)
class Part:
    """One folder of a diffusers-format model: its name, the class that loads it, and whether it holds weights
    (its config is then read before loading, and its weight files are checked against the model it builds)."""

    name: str
    loader: type
    weighted: bool = True
    config: Optional[type] = None  # the class that reads a weighted part's config, when not the loader itself
    optional: str = ""  # the group a model may leave out (SD3's "t5": its folders null in model_index.json, or
    # model.without: [t5])


@dataclass(frozen=True)
class SingleFile:
    """How the family's one-file checkpoints (the original CompVis / A1111 layout) are recognised and read."""

    text_key: str  # the key prefix of its text encoder in the checkpoint
    config_name: Callable[[Any], str]  # the configs/single_file folder for a checkpoint's header
    convert_text: Callable[[dict, Any], dict]  # (meta tensors, text config) -> the text encoder's diffusers tensors


@dataclass(frozen=True)
class FlowFile:
    """How a flow family's one-file checkpoints are recognised and read: SD3's all-in-one files (the transformer under
    `model.diffusion_model.`, the VAE, CLIPs and T5 under their prefixes) and FLUX's (BFL's transformer alone, bare or
    under `model.diffusion_model.`; ComfyUI's with the VAE and text encoders beside it). A part the file lacks comes
    from model.config's diffusers-format folder."""

    marker: str  # a transformer key (bare, or under model.diffusion_model.) no other family's files hold
    config_name: Callable[[Any], str]  # the configs/single_file folder for a checkpoint's header
    convert_transformer: Callable[[dict, dict], dict]  # (tensors, transformer config) -> diffusers' tensors
    texts: tuple[tuple[str, str], ...]  # (text encoder part, its key prefix in the file)


def guidance_scale_of(cfg) -> float:
    """The classifier-free guidance scale a run asks for: guidance_scale (FLUX reads true_cfg_scale instead)."""
    return cfg.guidance_scale


def no_timestep_options(scheduler, steps: int, latent_shape: tuple[int, ...]) -> dict:
    """set_timesteps' arguments besides the step count: none for most families."""
    return {}


@dataclass(frozen=True)
class Family:
    """A model family: its parts, the (tokenizer, text encoder) pairs its conditioning reads, its denoiser part, and
    the functions that build its conditioning and its model call."""

    name: str
    label: str
    parts: tuple[Part, ...]
    text_pairs: tuple[tuple[str, str], ...]
    denoiser: str
    encode: Callable[[Any, Any, int, bool, tuple[int, int]], Conditioning]  # (components, cfg, count, guided,
    # (height, width)) -> conditioning
    model_call: Callable[[Any, float], ModelCall]  # (components, guidance_scale) -> the denoiser's model call
    matches: Callable[[dict[str, dict]], bool]  # whether a folder's part configs (read before loading) are this family
    single_file: Optional[SingleFile] = None
    flow_file: Optional[FlowFile] = None
    syntaxes: tuple[str, ...] = SYNTAXES  # the prompt syntaxes its text side reads
    pipelines: tuple[str, ...] = ()  # the diffusers pipeline classes a model_index.json of this family names
    schedulers: str = NOISE  # the kind of scheduler its denoiser is sampled with (engine/schedulers.py)
    packing: int = 1  # latent cells per side the denoiser reads as one token (FLUX: 2x2 patches, 4x the channels)
    default_sample: int = 0  # the latent side when the denoiser's config has no sample_size (FLUX: 128)
    cfg_scale: Callable[[Any], float] = guidance_scale_of  # (cfg) -> the classifier-free guidance scale
    clip_skip: bool = True  # whether clip_skip changes its conditioning (FLUX reads CLIP's pooled output only)
    timestep_options: Callable[[Any, int, tuple], dict] = no_timestep_options  # (scheduler, steps, latent shape)
    # -> set_timesteps' other arguments (FLUX: its sigmas and the resolution's shift mu)

    @property
    def part_names(self) -> tuple[str, ...]:
        """Every part folder the family's models have."""
        return tuple(part.name for part in self.parts)

    @property
    def weighted(self) -> tuple[Part, ...]:
        """The parts with weight files."""
        return tuple(part for part in self.parts if part.weighted)

    @property
    def required(self) -> tuple[str, ...]:
        """The part folders every model of the family has (all but the optional ones)."""
        return tuple(part.name for part in self.parts if not part.optional)

    @property
    def optional_groups(self) -> tuple[str, ...]:
        """The groups of parts a run may leave out (model.without)."""
        return tuple(sorted({part.optional for part in self.parts if part.optional}))

    def part(self, name: str) -> Part:
        """The part called `name`."""
        return next(part for part in self.parts if part.name == name)
