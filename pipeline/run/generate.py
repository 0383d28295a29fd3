"""A generation run as numbered steps: check -> load -> encode -> variant.prepare -> denoise -> decode -> save."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pipeline import __version__
from pipeline.controls import active, check_controls, image_hashes, in_use
from pipeline.models.addons import addon_fields, gather_embeddings, gather_loras
from pipeline.models.addons.embeddings import Embedding, add_embeddings
from pipeline.models.addons.lora import Lora, apply_loras
from pipeline.models.components import Components, load_components, resolve_device
from pipeline.models.families.keys import check_family_keys
from pipeline.models.inspect import ModelInfo, inspect_model
from pipeline.run.config import to_yaml
from pipeline.engine.conditioning import Conditioning
from pipeline.engine.experts import first_expert
from pipeline.common.errors import UserError
from pipeline.engine.guidance import MAX_GUIDANCE_SCALE, is_guided
from pipeline.common.interrupts import held
from pipeline.engine.latents import decode, generators_for, to_pil
from pipeline.common.limits import check_counts, check_side
from pipeline.engine.loop import StepCallback, denoise
from pipeline.run.model_calls import model_call
from pipeline.run.outputs import a1111_parameters, check_writable, save_image
from pipeline.run.refiner import check_refiner, refine
from pipeline.run.size_keys import check_size_keys, sdxl_fields
from pipeline.speed.performance import apply_performance, check_model_fits, check_performance
from pipeline.text.check import check_prompt_options
from pipeline.run.processes import my_share, process_device
from pipeline.models.precision import DtypeChoice, announce, check_dtype_name, choose_dtype
from pipeline.engine.schedulers import SCHEDULERS, check_known, check_options, check_runnable, make_scheduler, resolve
from pipeline.models.single_file import model_hash
from pipeline.models.skip_layers import check_skip_layers
from pipeline.text.encoding import warn_about_prompt
from pipeline.variants import VARIANTS
from pipeline.variants.base import RunContext

log = logging.getLogger("pipeline")
EMPHASIS = {"none": "None", "compel": "compel"}  # the PNG's Emphasis field for each prompt_syntax but A1111's own


@dataclass
class Plan:
    """Everything a run needs that could be checked before any weights load."""

    cfg: DictConfig
    info: ModelInfo
    scheduler: str
    height: int
    width: int
    device: torch.device
    precision: DtypeChoice
    output_dir: Path
    loras: list[Lora] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)
    refiner: Optional[ModelInfo] = None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the components are loaded in (model.dtype, with `auto` decided)."""
        return self.precision.dtype

    @property
    def seeds(self) -> list[int]:
        """Image i uses seed + i."""
        return [self.cfg.seed + i for i in range(self.cfg.num_images)]


def scheduler_options_of(cfg: DictConfig) -> dict:
    """The user's scheduler overrides as plain Python values."""
    return OmegaConf.to_container(cfg.scheduler.options, resolve=True)


def _check_numbers(cfg: DictConfig) -> None:
    """Ranges the schema's types cannot express (a NaN fails every range, inf every bounded one)."""
    rules = [
        ("steps", cfg.steps >= 1, "an integer >= 1"),
        ("num_images", cfg.num_images >= 1, "an integer >= 1"),
        ("batch_size", cfg.batch_size >= 1, "an integer >= 1"),
        ("guidance_scale", 0 <= cfg.guidance_scale <= MAX_GUIDANCE_SCALE, f"a number in [0, {MAX_GUIDANCE_SCALE:g}]"),
        ("guidance_rescale", 0 <= cfg.guidance_rescale <= 1, "a number in [0, 1]"),
    ]
    for key, ok, must in rules:
        if not ok:
            raise UserError(f"{key} must be {must}; got {cfg[key]}.")


def _check_size(cfg: DictConfig, info: ModelInfo, native: tuple[int, int] | None) -> tuple[int, int]:
    """Height and width, defaulting to the input image's size or the model's, each divisible by the VAE factor."""
    factor = info.size_factor
    defaults = {"width": native[0], "height": native[1]} if native else {}
    sizes = []
    for key in ("height", "width"):
        value = cfg[key] if cfg[key] is not None else defaults.get(key, info.default_size)
        if value < factor or value % factor:
            raise UserError(f"{key} must be a positive multiple of {factor} ({info.size_rule}); got {value}.")
        source = "" if cfg[key] is not None else " (the input's size)" if native else " (the model's size)"
        check_side(key, value, source)
        sizes.append(value)
    return sizes[0], sizes[1]


def check(cfg: DictConfig) -> Plan:
    """Validate every key and the model folder's configs; raises UserError before any weights load."""
    if cfg.task not in VARIANTS:
        raise UserError(f"task must be one of {', '.join(VARIANTS)}; got '{cfg.task}'.")
    check_known(cfg.scheduler.name)
    _check_numbers(cfg)
    check_counts(cfg)
    device = resolve_device(cfg.model.device)
    check_dtype_name(cfg.model.dtype)
    check_performance(cfg.performance, device)
    info = inspect_model(cfg.model.path, cfg.model.allow_pickle, cfg.model.config, tuple(cfg.model.without))
    scheduler = resolve(cfg.scheduler.name, info.family.schedulers, f"model.path {cfg.model.path}")
    check_options(scheduler, scheduler_options_of(cfg))
    side = info.default_size // info.vae_scale_factor  # any latent size shows whether the schedule can be made
    check_runnable(scheduler, info.scheduler, scheduler_options_of(cfg), cfg.steps,
                   lambda s, steps: info.family.timestep_options(s, steps, (info.latent_channels, side, side)))
    check_prompt_options(cfg, info.text_encoder, info.family.syntaxes, info.family.label)
    check_family_keys(cfg, info.family)
    check_size_keys(cfg, info.family)
    refiner = check_refiner(cfg, info, scheduler)
    precision = choose_dtype(cfg.model.dtype, device, info.unet, info.vae)
    check_model_fits(cfg.performance, info.unet)
    check_skip_layers(cfg, info.unet)
    native = VARIANTS[cfg.task].check(cfg, info)
    height, width = _check_size(cfg, info, native)
    check_controls(cfg, info, (width, height))
    loras, embeddings = gather_loras(cfg, info), gather_embeddings(cfg, info)
    output_dir = check_writable(cfg.output_dir)
    return Plan(cfg, info, scheduler, height, width, device, precision, output_dir, loras, embeddings, refiner)


def generate_images(
    components: Components,
    cfg: DictConfig,
    seeds: list[int],
    height: int,
    width: int,
    progress: bool = True,
    callback: Optional[StepCallback] = None,
    noise: Optional[torch.Tensor] = None,
    conditioning: Optional[Conditioning] = None,
) -> list[Image.Image]:
    """One batch: encode the text, let the variant prepare latents, build the model call, denoise (the base's share
    of the steps, then the refiner's, when components has one), decode.

    `noise` and `conditioning` replace the seeded starting noise and the encoded prompts (the interpolation tool's
    frames).
    """
    generators = generators_for(seeds)
    key = resolve(cfg.scheduler.name, components.family.schedulers)
    scheduler = make_scheduler(key, components.scheduler_config, scheduler_options_of(cfg), seeds)
    if conditioning is None:
        guided = is_guided(components.family.cfg_scale(cfg), components.unet.config)
        conditioning = components.family.encode(components, cfg, len(seeds), guided, (height, width))
    ctx = RunContext(cfg, components, scheduler, generators, height, width, noise)
    setup = VARIANTS[cfg.task].prepare(ctx)
    for control, loaded in in_use(cfg, components.controls):
        prepare = getattr(control, "prepare", None)
        conditioning = prepare(loaded, ctx, conditioning) if prepare else conditioning
    refiner = components.refiner
    if refiner is not None:
        setup.timesteps = first_expert(scheduler, setup.timesteps, cfg.refiner.switch_at)
    latents = denoise(
        model_call(components, cfg, setup, ctx), scheduler, setup, conditioning, components.family.cfg_scale(cfg),
        cfg.guidance_rescale, generators, callback=callback, progress=progress,
        guidance_cutoff=cfg.performance.guidance_cutoff,
    )
    if refiner is not None:
        latents = refine(refiner, cfg, latents, seeds, generators, (height, width), progress, callback)
    images = decode((refiner or components).vae, latents)
    return to_pil(setup.finish(images) if setup.finish else images)


def image_parameters(plan: Plan, seed: int) -> str:
    """The A1111-style parameters text for one image."""
    cfg = plan.cfg
    fields: dict[str, object] = {
        "Steps": cfg.steps,
        "Sampler": SCHEDULERS[plan.scheduler].label,
        "CFG scale": cfg.guidance_scale,
        "Seed": seed,
        "Size": f"{plan.width}x{plan.height}",
    }
    if plan.info.single_file:  # as A1111: the file's short hash, then its name without the extension
        fields["Model hash"] = model_hash(cfg.model.path)
    fields["Model"] = Path(cfg.model.path).stem if plan.info.single_file else Path(cfg.model.path).name
    if cfg.guidance_rescale > 0:
        fields["CFG rescale"] = cfg.guidance_rescale
    if cfg.clip_skip > 1:
        fields["Clip skip"] = cfg.clip_skip
    fields.update(addon_fields(plan.loras, plan.embeddings))
    if cfg.prompt_syntax != "a1111":  # A1111 names its emphasis mode only when it is not "Original"
        fields["Emphasis"] = EMPHASIS[cfg.prompt_syntax]
    if cfg.task != "txt2img":
        fields["Denoising strength"] = cfg.strength
    fields.update(sdxl_fields(cfg, plan.refiner))
    for control in active(cfg).values():
        fields.update(control.fields(cfg))
    fields["Version"] = f"pipeline {__version__}"
    return a1111_parameters(cfg.prompt, cfg.negative_prompt, fields)


def image_config(plan: Plan, seed: int, batch: int = 1) -> str:
    """The resolved config that reproduces this one image (with the dtype `auto` chose on this machine): byte for
    byte when it was made in a batch of one; from a larger batch, within the float rounding a batch changes, which
    a comment at the top says. Comments also name each control image's hash."""
    cfg = OmegaConf.merge(plan.cfg, {"seed": seed, "num_images": 1, "batch_size": 1, "height": plan.height,
                                     "width": plan.width, "model": {"dtype": plan.precision.name}})
    note = (f"# Made in a batch of {batch} (batch_size {plan.cfg.batch_size}); alone, as below, it regenerates within "
            "a level or two of 255 on a few pixels (README, batch_size).\n") if batch > 1 else ""
    return note + image_hashes(plan.cfg) + to_yaml(cfg)


def loaded_with(plan: Plan) -> str:
    """What the loaded components depend on (model, task, performance, add-ons): runs that agree share one load."""
    cfg = plan.cfg
    return json.dumps({
        "model": OmegaConf.to_container(cfg.model), "task": cfg.task,
        "performance": OmegaConf.to_container(cfg.performance), "device": str(plan.device), "dtype": str(plan.dtype),
        "loras": [(str(lora.path), lora.weight) for lora in plan.loras],
        "embeddings": [str(embedding.path) for embedding in plan.embeddings],
        "refiner": OmegaConf.to_container(cfg.refiner) if plan.refiner is not None else None,
        "controls": {key: [entry.path for entry in cfg[key]] for key in active(cfg)},
        "image_encoder": cfg.image_encoder,
    }, sort_keys=True)


def load(plan: Plan) -> Components:
    """Load the checked model with the parts its variant needs, and apply the performance options."""
    cfg = plan.cfg
    variant = VARIANTS[cfg.task]
    parts = variant.extra_parts(cfg) if hasattr(variant, "extra_parts") else ()
    announce(plan.precision)
    components = load_components(plan.info, plan.device, plan.dtype, cfg.model.allow_pickle, parts,
                                 tuple(cfg.model.without))
    add_embeddings(plan.embeddings, components)
    text_encoders = {name: components.parts[name] for _, name in components.family.text_pairs}
    apply_loras(plan.loras, components.unet, text_encoders)
    apply_performance(components, cfg.performance)
    components.controls = {key: control.load(cfg, plan.info, components) for key, control in active(cfg).items()}
    if plan.refiner is not None:
        components.refiner = load_components(plan.refiner, plan.device, plan.dtype, cfg.model.allow_pickle)
        add_embeddings(plan.embeddings, components.refiner)
        apply_performance(components.refiner, cfg.performance)
    return components


def run(cfg: DictConfig, progress: bool = True) -> Iterator[Path]:
    """Check, load, then generate batch by batch, yielding each image's path as soon as it is saved."""
    plan = check(cfg)
    started = time.perf_counter()
    components = load(replace(plan, device=process_device(plan.device)))
    loaded = time.perf_counter()
    warn_about_prompt(components.tokenizer, cfg.prompt, "prompt", cfg.prompt_syntax)
    warn_about_prompt(components.tokenizer, cfg.negative_prompt, "negative_prompt", cfg.prompt_syntax)
    seeds, generating = my_share(plan.seeds), 0.0  # under a launcher, this process's share of the seeds
    for start in range(0, len(seeds), cfg.batch_size):
        batch = seeds[start : start + cfg.batch_size]
        began = time.perf_counter()
        images = generate_images(components, cfg, batch, plan.height, plan.width, progress=progress)
        generating += time.perf_counter() - began
        for seed, image in zip(batch, images):
            with held():  # Ctrl-C or SIGTERM during a save waits until its path has reached the caller
                parameters, resolved = image_parameters(plan, seed), image_config(plan, seed, len(batch))
                yield save_image(image, plan.output_dir, str(seed), parameters, resolved)
    log.info("%d image(s) generated in %.2f s (%d steps, %dx%d, %s, %d threads); loading took %.2f s.", len(seeds),
             generating, cfg.steps, plan.width, plan.height, plan.precision.name, torch.get_num_threads(),
             loaded - started)
