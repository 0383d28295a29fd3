"""What a ControlNet costs per step: one guided denoising step with a ControlNet, ours vs diffusers'
StableDiffusionControlNetPipeline on the very same modules, and the same step without it (ours vs
StableDiffusionPipeline), interleaved; time inside the UNet and the ControlNet, peak memory, latents' parity.

What is timed, on both sides: from the call to the denoised latents of `steps` guided steps, with the prompt encoded
beforehand (our conditioning bundle; its hidden states given to diffusers as prompt_embeds / negative_prompt_embeds)
and no VAE decode (diffusers' output_type="latent"; ours stops where generate_images would decode). Inside: the
scheduler's set-up, the starting noise, reading and preparing the control image, the ControlNet and UNet calls, the
guidance and the scheduler step. The ControlNet is ControlNetModel.from_unet(unet) (SD 1.5's real ControlNets are
its size) with its zero convolutions drawn from N(0, perturb_std), so that it changes the latents.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from pipeline.common.errors import UserError
from pipeline.controls import active
from pipeline.engine.latents import generators_for
from pipeline.engine.loop import denoise
from pipeline.engine.schedulers import make_scheduler, resolve
from pipeline.lab.bench.measure import cpu_description, describe_cpu, peak_memory, sync, timed_calls
from pipeline.lab.bench.runs import reference_pipeline
from pipeline.lab.bench.sd15 import build_sd15
from pipeline.lab.fixtures.tiny_controlnet import zero_convolutions
from pipeline.models.components import Components, load_components, resolve_device
from pipeline.models.inspect import ModelInfo, inspect_model
from pipeline.run import config
from pipeline.run.generate import scheduler_options_of
from pipeline.run.model_calls import model_call
from pipeline.variants import VARIANTS
from pipeline.variants.base import RunContext

KINDS = ("controlnet", "unet")  # the step with the ControlNet, the step without
EMBEDDING_CHANNELS = (16, 32, 96, 256)  # ControlNetModel's default: three 2x downsamplings, SD's VAE factor 8


@dataclass
class ControlNetBenchConfig:
    """What to time: the model ('sd15-random' or an SD 1.x folder), the size, interleaved repeats, the step."""

    model: str = "sd15-random"
    device: str = "auto"
    size: int = 512
    repeats: int = 3  # interleaved rounds; each runs ours and diffusers', with and without the ControlNet
    steps: int = 1
    guidance_scale: float = 7.5
    scheduler: str = "euler"
    prompt: str = "a photograph of an astronaut riding a horse"
    seed: int = 0
    perturb_std: float = 0.01


def build(cfg: ControlNetBenchConfig, device: torch.device, folder: Path) -> tuple[Components, ModelInfo | None]:
    """float32 components (SD 1.5's real shapes with random weights, or a folder's; its ModelInfo then) and, saved
    in `folder`, a ControlNet made from the UNet, its control embedding downsampling to the latents' size, zero
    convolutions perturbed under the seed."""
    info = None if cfg.model == "sd15-random" else inspect_model(cfg.model)
    components = build_sd15(device, torch.float32, cfg.seed) if info is None \
        else load_components(info, device, torch.float32)
    levels = len(components.vae.config.block_out_channels) - 1  # the VAE's 2x downsamplings
    controlnet = ControlNetModel.from_unet(components.unet, conditioning_embedding_out_channels=EMBEDDING_CHANNELS[:levels + 1])
    generator = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for param in (p for conv in zero_convolutions(controlnet) for p in conv.parameters()):
            param.copy_(torch.randn(param.shape, generator=generator) * cfg.perturb_std)
    controlnet.save_pretrained(folder)
    return components, info


def load_controlnet(run, info: ModelInfo | None, components: Components) -> tuple[list, ControlNetModel]:
    """The ControlNet as a run loads it (the control module's own load, from the saved folder), and the model in it
    (a loaded entry is the ControlNetModel or a unit holding it as `.model`). sd15-random has no ModelInfo; its
    preprocessor none needs none."""
    loaded = active(run)["controlnets"].load(run, info, components)
    return loaded, getattr(loaded[0], "model", loaded[0])


def control_image(folder: Path, size: int) -> Path:
    """A control map to read: a white ring and bar on black, as an edge map looks (size x size PNG)."""
    y, x = np.mgrid[0:size, 0:size] / size
    ring = np.abs(np.hypot(x - 0.5, y - 0.45) - 0.3) < 0.02
    bar = (np.abs(x - 0.7) < 0.015) & (y > 0.55)
    path = folder / "control.png"
    Image.fromarray(((ring | bar) * 255).astype(np.uint8)).convert("RGB").save(path)
    return path


def run_config(cfg: ControlNetBenchConfig, image: Path | None):
    """Our generation config for the step, with one ControlNet entry reading `image` (none without one)."""
    items = {"prompt": cfg.prompt, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale, "height": cfg.size,
             "width": cfg.size, "seed": cfg.seed, "scheduler.name": cfg.scheduler}
    run = config.load(None, [f"{k}={v}" for k, v in items.items()])
    entries = [{"path": str(image.parent / "controlnet"), "image": str(image)}] if image else []
    return OmegaConf.merge(run, {"controlnets": entries})


def our_latents(components: Components, run, seeds: list[int], conditioning) -> torch.Tensor:
    """generate_images' path from its encoded prompt to the latents it would decode: the scheduler, the task's
    prepare, the controls, our model call (the ControlNet's wrap around the UNet call) and the loop."""
    generators = generators_for(seeds)
    scheduler = make_scheduler(run.scheduler.name, components.scheduler_config, scheduler_options_of(run), seeds)
    ctx = RunContext(run, components, scheduler, generators, run.height, run.width)
    setup = VARIANTS[run.task].prepare(ctx)
    for key, loaded in components.controls.items():
        prepare = getattr(active(run)[key], "prepare", None)
        conditioning = prepare(loaded, ctx, conditioning) if prepare else conditioning
    return denoise(model_call(components, run, setup, ctx), scheduler, setup, conditioning, run.guidance_scale,
                   run.guidance_rescale, generators, progress=False, guidance_cutoff=run.performance.guidance_cutoff)


def their_latents(pipe, run, seeds: list[int], conditioning, image: Path | None) -> torch.Tensor:
    """diffusers' pipeline call to latents with the same embeddings, steps, size, scheduler and generators."""
    pipe.scheduler = make_scheduler(run.scheduler.name, pipe.original_scheduler_config, {}, seeds)
    control = {"image": Image.open(image), "controlnet_conditioning_scale": 1.0} if image else {}
    return pipe(prompt_embeds=conditioning.cond["hidden_states"][:1],
                negative_prompt_embeds=conditioning.uncond["hidden_states"][:1], num_inference_steps=run.steps,
                guidance_scale=run.guidance_scale, height=run.height, width=run.width,
                num_images_per_prompt=len(seeds), generator=generators_for(seeds), output_type="latent",
                **control).images


def timed(step, components: Components, controlnet: ControlNetModel) -> tuple[dict, torch.Tensor]:
    """One step's wall seconds, seconds inside UNet and ControlNet calls (and their counts), peak memory."""
    targets = {"unet": (components.unet, "forward"), "controlnet": (controlnet, "forward")}
    sync(components.device)
    with peak_memory(components.device) as memory, timed_calls(components.device, targets) as inside:
        start = time.perf_counter()
        latents = step()
        sync(components.device)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, **inside, "peak_mb": memory["peak_mb"]}, latents


def call_flops(model, *args, **kwargs) -> int:
    """FLOPs of one call, counted on a meta-device copy (attention included; no time, no memory)."""
    with torch.device("meta"):
        copy = type(model).from_config(model.config)
        meta = [torch.zeros(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
        given = {k: torch.zeros(v.shape) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            copy(*meta, **given)
    return counter.get_total_flops()


def flops(components: Components, controlnet: ControlNetModel, size: int) -> dict[str, float]:
    """GFLOP of one guided call (batch 2) of the UNet and of the ControlNet at the size."""
    factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
    sample = torch.zeros(2, components.unet.config.in_channels, size // factor, size // factor)
    context = torch.zeros(2, 77, components.unet.config.cross_attention_dim)
    t = torch.tensor(500)
    return {"unet": call_flops(components.unet, sample, t, encoder_hidden_states=context) / 1e9,
            "controlnet": call_flops(controlnet, sample, t, encoder_hidden_states=context,
                                     controlnet_cond=torch.zeros(2, 3, size, size)) / 1e9}


def summary(runs: list[dict]) -> dict:
    """Medians of one side's runs and its largest peak."""
    return {"runs": runs, "seconds": statistics.median(r["seconds"] for r in runs),
            "unet_s": statistics.median(r["unet"] / max(r["unet_calls"], 1) for r in runs),
            "controlnet_s": statistics.median(r["controlnet"] / max(r["controlnet_calls"], 1) for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs)}


def run_controlnet_bench(cfg: ControlNetBenchConfig) -> dict:
    """Build once, warm up, then `repeats` rounds, each timing ours and diffusers' (order alternating) with and
    without the ControlNet; the latents of the last round compared."""
    resolve(cfg.scheduler)
    if cfg.size < 8 or cfg.size % 8 or cfg.repeats < 1 or cfg.steps < 1:
        raise UserError(f"size must be a positive multiple of 8, repeats and steps >= 1; got size {cfg.size}, "
                        f"repeats {cfg.repeats}, steps {cfg.steps}.")
    with tempfile.TemporaryDirectory(prefix="bench-controlnet-") as folder:  # the saved ControlNet, the image
        return measure(cfg, resolve_device(cfg.device), Path(folder))


def reference_pipelines(components: Components, controlnet: ControlNetModel) -> dict:
    """diffusers' StableDiffusionControlNetPipeline and StableDiffusionPipeline on the very same modules."""
    pipes = {"controlnet": StableDiffusionControlNetPipeline(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
        unet=components.unet, controlnet=controlnet, scheduler=make_scheduler("pndm", components.scheduler_config, {}, [0]),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False), "unet": reference_pipeline(components)}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
        pipe.original_scheduler_config = dict(components.scheduler_config)
    return pipes


def measure(cfg: ControlNetBenchConfig, device: torch.device, folder: Path) -> dict:
    """Build (the ControlNet saved in and loaded from `folder`), warm up, then the interleaved rounds."""
    started = time.perf_counter()
    components, info = build(cfg, device, folder / "controlnet")
    image = control_image(folder, cfg.size)
    runs = {"controlnet": run_config(cfg, image), "unet": run_config(cfg, None)}
    loaded, controlnet = load_controlnet(runs["controlnet"], info, components)
    result = {"cpu": cpu_description(), "torch": torch.__version__, "device": device.type, "model": cfg.model,
              "build_s": time.perf_counter() - started, "gflop": flops(components, controlnet, cfg.size),
              "params": {"unet": sum(p.numel() for p in components.unet.parameters()),
                         "controlnet": sum(p.numel() for p in controlnet.parameters())}}
    seeds, pipes = [cfg.seed], reference_pipelines(components, controlnet)
    conditioning = components.family.encode(components, runs["unet"], len(seeds), True, (cfg.size, cfg.size))

    def step(kind: str, who: str):
        components.controls = {"controlnets": loaded} if kind == "controlnet" else {}
        if who == "ours":
            return lambda: our_latents(components, runs[kind], seeds, conditioning)
        return lambda: their_latents(pipes[kind], runs[kind], seeds, conditioning, image if kind == "controlnet" else None)

    timed(step("controlnet", "ours"), components, controlnet)  # warm-up: first calls allocate and pick kernels
    measured = {kind: {"ours": [], "diffusers": []} for kind in KINDS}
    latents, load_before = {}, os.getloadavg()
    for round_ in range(cfg.repeats):
        for kind in KINDS:
            for who in (("ours", "diffusers") if round_ % 2 == 0 else ("diffusers", "ours")):
                run, latents[kind, who] = timed(step(kind, who), components, controlnet)
                measured[kind][who].append(run)
    result.update(load=[load_before[0], os.getloadavg()[0]], repeats=cfg.repeats, size=cfg.size,
                  process_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    for kind in KINDS:
        sides = measured[kind]
        result[kind] = {who: summary(sides[who]) for who in sides}
        result[kind]["ratio"] = [o["seconds"] / d["seconds"] for o, d in zip(sides["ours"], sides["diffusers"])]
        result[kind]["latents_max_diff"] = float((latents[kind, "ours"] - latents[kind, "diffusers"]).abs().max())
    result["control_effect"] = float((latents["controlnet", "ours"] - latents["unet", "ours"]).abs().max())
    return result


def interval(ratios: list[float]) -> str:
    """Median [min, max] of per-round ratios."""
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"


def outside(runs: list[dict]) -> float:
    """Median seconds of a side's step spent outside the UNet and ControlNet calls (its own code, the scheduler)."""
    return statistics.median(r["seconds"] - r["unet"] - r["controlnet"] for r in runs)


def markdown(result: dict, cfg: ControlNetBenchConfig) -> str:
    """A dated section for docs/benchmarks.md: the step with and without the ControlNet, ours and diffusers'."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cn, unet, gflop, params = result["controlnet"], result["unet"], result["gflop"], result["params"]
    lines = [f"## {stamp}: one guided step with a ControlNet, {cfg.model}, {result['device']}, torch {result['torch']}",
             "", describe_cpu(result["cpu"]), "",
             f"float32; {cfg.size}x{cfg.size}, {cfg.scheduler}, {cfg.steps} step(s), guidance {cfg.guidance_scale}, "
             f"1 image (UNet and ControlNet batch 2); {result['repeats']} interleaved rounds, load average "
             f"{result['load'][0]:.1f} before, {result['load'][1]:.1f} after. Parameters: UNet {params['unet']:,}, "
             f"ControlNet {params['controlnet']:,}. Timed: encoded prompt to latents (no text encoder, no VAE).", "",
             "| measure | with ControlNet | UNet only |", "|---|---|---|"]
    rows = {
        "ours s (median)": lambda r: f"{r['ours']['seconds']:.2f}",
        "diffusers s (median)": lambda r: f"{r['diffusers']['seconds']:.2f}",
        "ours / diffusers: median [min, max]": lambda r: interval(r["ratio"]),
        "fastest run: ours / diffusers (contention only adds)":
            lambda r: f"{min(x['seconds'] for x in r['ours']['runs']) / min(x['seconds'] for x in r['diffusers']['runs']):.3f}",
        "outside UNet and ControlNet calls s (median): ours / diffusers":
            lambda r: f"{outside(r['ours']['runs']):.3f} / {outside(r['diffusers']['runs']):.3f}",
        "UNet s per call: ours / diffusers": lambda r: f"{r['ours']['unet_s']:.2f} / {r['diffusers']['unet_s']:.2f}",
        "ControlNet s per call: ours / diffusers":
            lambda r: f"{r['ours']['controlnet_s']:.2f} / {r['diffusers']['controlnet_s']:.2f}",
        "peak memory above start MB: ours / diffusers":
            lambda r: f"{r['ours']['peak_mb']:.0f} / {r['diffusers']['peak_mb']:.0f}",
        "max abs latent diff ours vs diffusers": lambda r: f"{r['latents_max_diff']:.2g}",
    }
    lines += [f"| {name} | {cell(cn)} | {cell(unet)} |" for name, cell in rows.items()]
    added = [c["seconds"] / u["seconds"] - 1 for c, u in zip(cn["ours"]["runs"], unet["ours"]["runs"])]
    lines += ["", f"What the ControlNet adds: its call over the UNet's {cn['ours']['controlnet_s'] / cn['ours']['unet_s']:.2f} "
              f"(ours), {cn['diffusers']['controlnet_s'] / cn['diffusers']['unet_s']:.2f} (diffusers'); "
              f"GFLOP per call {gflop['controlnet']:.0f} / {gflop['unet']:.0f} = {gflop['controlnet'] / gflop['unet']:.2f}; "
              f"our step with it over our step without it: +{100 * statistics.median(added):.0f}% "
              f"[{100 * min(added):.0f}%, {100 * max(added):.0f}%]. The ControlNet changes the latents by up to "
              f"{result['control_effect']:.2g}. Peak resident memory of the process: {result['process_peak_rss_mb']:.0f} MB."]
    return "\n".join(lines) + "\n"


def load_controlnet_bench(path: str | None, overrides: list[str]):
    """The config from YAML and key=value overrides, with the strict schema."""
    return config.load(Path(path) if path else None, overrides, schema=ControlNetBenchConfig)
