"""The benchmark: ours vs diffusers on the same work, interleaved, with shares, memory, FLOP rate and options."""

from __future__ import annotations

import copy
import dataclasses
import statistics
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pipeline.run import config
from pipeline.models.components import load_components, resolve_device
from pipeline.models.inspect import inspect_model
from pipeline.common.errors import UserError
from pipeline.engine.guidance import is_guided
from pipeline.speed.performance import apply_performance
from pipeline.engine.schedulers import resolve
from pipeline.models.precision import DTYPES, choose_dtype, cpu_bfloat16_support
from pipeline.lab.bench.measure import cpu_description, gemm_rate, unet_flops
from pipeline.lab.bench.runs import pixel_error, psnr, reference_pipeline, run_diffusers, run_ours, vae_decode_cost
from pipeline.lab.bench.schema import OPTIONS, BenchConfig
from pipeline.lab.bench.sd15 import UNET as SD15_UNET
from pipeline.lab.bench.sd15 import build_sd15


def check(bench) -> None:
    """Refuse a bad benchmark config before any model is built."""
    resolve(bench.scheduler)
    for key in ("steps", "repeats", "option_repeats", "num_images"):
        if bench[key] < 1:
            raise UserError(f"{key} must be an integer >= 1; got {bench[key]}.")
    unknown = [o for o in bench.options if o not in OPTIONS]
    if unknown:
        raise UserError(f"options must be among {', '.join(OPTIONS)}; got {', '.join(unknown)}.")
    if bench.dtypes[:1] != ["float32"]:
        raise UserError(f"dtypes must start with float32, the reference the others are compared to; got {list(bench.dtypes)}.")


def run_config(bench, **overrides):
    """A generation config for the benchmark's work, with option overrides."""
    items = {"prompt": bench.prompt, "steps": bench.steps, "guidance_scale": bench.guidance_scale,
             "height": bench.height, "width": bench.width, "seed": bench.seed, "scheduler.name": bench.scheduler,
             **overrides}
    return config.load(None, [f"{k}={v}" for k, v in items.items()])


def unet_config(bench) -> dict:
    """The benchmarked UNet's config, read before anything is built."""
    return dict(SD15_UNET) if bench.model == "sd15-random" else inspect_model(bench.model).unet


def native_dtypes(names: list[str], device: torch.device) -> tuple[list[str], dict[str, str]]:
    """The dtypes this device runs natively, and a reason for each one skipped (an emulated one runs for hours)."""
    kept, skipped = [], {}
    for name in names:
        if device.type == "cpu" and name == "bfloat16" and not cpu_bfloat16_support()[0]:
            skipped[name] = f"this CPU has no native bfloat16 ({cpu_bfloat16_support()[1]})"
        elif device.type == "cpu" and name == "float16":
            skipped[name] = "float16 matmuls are not native on CPUs"
        elif device.type == "cuda" and name == "bfloat16" and not torch.cuda.is_bf16_supported():
            skipped[name] = "this GPU has no native bfloat16"
        else:
            kept.append(name)
    return kept, skipped


def build(bench, dtypes: list[str], device: torch.device) -> dict[str, object]:
    """float32 components, plus a cast copy for every other dtype measured."""
    if bench.model == "sd15-random":
        base = build_sd15(device, torch.float32)
    else:
        base = load_components(inspect_model(bench.model), device, torch.float32)
    apply_performance(base, run_config(bench).performance)
    built = {"float32": base}
    for name in dtypes[1:]:
        dtype = DTYPES[name]
        parts = {part.name: copy.deepcopy(module).to(dtype) if part.weighted else module
                 for part in base.family.parts if (module := base.parts.get(part.name)) is not None}
        built[name] = dataclasses.replace(base, parts=parts, dtype=dtype)
    return built


def ratio_summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of a list of ratios."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def same_work(bench, built, seeds) -> dict:
    """Interleaved repeats of ours and diffusers per dtype; ratios, memory and dtype error."""
    cfg = run_config(bench)
    pipes = {name: reference_pipeline(c) for name, c in built.items()}
    runs = {name: {"ours": [], "diffusers": []} for name in built}
    for _ in tqdm(range(bench.repeats), desc="repeats"):
        for name, components in built.items():
            runs[name]["ours"].append(run_ours(components, cfg, seeds))
            runs[name]["diffusers"].append(run_diffusers(pipes[name], cfg, seeds, components.scheduler_config))
    result = {}
    for name, pair in runs.items():
        ours, theirs = pair["ours"], pair["diffusers"]
        result[name] = {
            "ours_seconds": [m.seconds for m in ours],
            "diffusers_seconds": [m.seconds for m in theirs],
            "ratio": ratio_summary([o.seconds / t.seconds for o, t in zip(ours, theirs)]),
            "ours_peak_mb": max(m.peak_mb for m in ours),
            "diffusers_peak_mb": max(m.peak_mb for m in theirs),
            "vs_diffusers_pixels": pixel_error(ours[0].images, theirs[0].images),
            "vs_float32_pixels": pixel_error(ours[0].images, runs["float32"]["ours"][0].images),
        }
    return result


def shares(bench, built, seeds, device) -> dict:
    """Per dtype: where our loop's time goes, and the UNet's achieved FLOP rate against a GEMM."""
    result = {}
    for name, components in built.items():
        cfg = run_config(bench)
        run = run_ours(components, cfg, seeds, sections=True)
        s = run.sections
        rest = run.seconds - s["unet"] - s["text_encoder"] - s["vae_decode"]
        guided = is_guided(bench.guidance_scale, components.unet.config)
        batch = len(seeds) * (2 if guided else 1)
        context = torch.zeros(1, 77, components.unet.config.cross_attention_dim, device=device, dtype=components.dtype)
        factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
        flops = unet_flops(components.unet, batch, (bench.height // factor, bench.width // factor), context)
        achieved = flops * s["unet_calls"] / s["unet"]
        peak, gemm_n = gemm_rate(device, components.dtype, bench.gemm_budget_s)
        result[name] = {
            "seconds": run.seconds,
            "share": {k: s[k] / run.seconds for k in ("unet", "text_encoder", "vae_decode")} | {"rest": rest / run.seconds},
            "unet_share_of_denoising": s["unet"] / (s["unet"] + rest),
            "unet_calls": s["unet_calls"],
            "unet_gflop_per_call": flops / 1e9,
            "unet_gflops": achieved / 1e9,
            "gemm_gflops": peak / 1e9,
            "gemm_n": gemm_n,
            "fraction_of_gemm": achieved / peak,
        }
    return result


def median_run(components, cfg, seeds, sections: bool, repeats: int):
    """The run of median time among `repeats` runs of the same work (a single run of a fast model is noisy)."""
    runs = sorted((run_ours(components, cfg, seeds, sections=sections) for _ in range(repeats)), key=lambda m: m.seconds)
    return runs[(len(runs) - 1) // 2]


def options(bench, built, seeds, auto: str) -> dict:
    """Each opt-in option against our default run (the auto dtype): the median of option_repeats runs each."""
    components = built[auto]
    base = median_run(components, run_config(bench), seeds, True, bench.option_repeats)
    result = {"baseline_seconds": base.seconds, "baseline_unet_seconds": base.sections["unet"]}
    for option in tqdm(bench.options, desc="options"):
        if option == "vae_tiling":
            result[option] = {
                "size": bench.vae_tiling_size,
                "plain": vae_decode_cost(components, bench.vae_tiling_size, tiled=False),
                "tiled": vae_decode_cost(components, bench.vae_tiling_size, tiled=True),
            }
            continue
        # DeepCache wraps the UNet per batch from the run config, leaving the shared UNet as it is; its UNet time
        # would count the full passes only, so it is timed whole.
        overrides = {"guidance_1": {"guidance_scale": 1.0},
                     "guidance_cutoff": {"performance.guidance_cutoff": bench.guidance_cutoff},
                     "deepcache": {"performance.deepcache_interval": bench.deepcache_interval}}.get(option, {})
        variant = copy.copy(components)
        if option in ("attention_slicing", "channels_last", "compile", "token_merging"):
            variant.unet = copy.deepcopy(components.unet)
            value = bench.token_merging if option == "token_merging" else "true"
            apply_performance(variant, run_config(bench, **{f"performance.{option}": value}).performance)
        cfg = run_config(bench, **overrides)
        warm = run_ours(variant, cfg, seeds) if option == "compile" else None
        timed = median_run(variant, cfg, seeds, option not in ("compile", "deepcache"), bench.option_repeats)
        result[option] = {
            "seconds": timed.seconds,
            "vs_baseline": timed.seconds / base.seconds,
            "pixels_vs_baseline": pixel_error(timed.images, base.images),
            "psnr_vs_baseline": psnr(timed.images, base.images),
        }
        if timed.sections:
            result[option]["unet_seconds"] = timed.sections["unet"]
            result[option]["unet_vs_baseline"] = timed.sections["unet"] / base.sections["unet"]
        if warm is not None:
            result[option]["first_run_seconds"] = warm.seconds
    return result


def run_benchmark(bench) -> dict:
    """Build the model(s), then measure everything in one process so every ratio shares its conditions."""
    check(bench)
    device = resolve_device(bench.device)
    choice = choose_dtype("auto", device, unet_config(bench))
    dtypes, skipped = native_dtypes(list(bench.dtypes), device)
    if choice.name not in dtypes:
        raise UserError(f"dtypes must include {choice.name}, the dtype model.dtype auto picks here ({choice.reason}).")
    torch.manual_seed(0)
    built = build(bench, dtypes, device)
    seeds = [bench.seed + i for i in range(bench.num_images)]
    run_ours(built["float32"], run_config(bench), seeds)  # warm-up: first calls allocate and pick kernels
    result = {"device": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": cpu_description(), "auto_dtype": choice.name, "auto_reason": choice.reason,
              "skipped_dtypes": skipped}
    auto = choice.name
    result["same_work"] = same_work(bench, built, seeds)
    result["shares"] = shares(bench, built, seeds, device)
    result["options"] = options(bench, built, seeds, auto)
    same = result["same_work"]
    ours_auto = statistics.median(same[auto]["ours_seconds"])
    result["defaults_speedup"] = statistics.median(same["float32"]["diffusers_seconds"]) / ours_auto
    result["auto_vs_float32_speedup"] = statistics.median(same["float32"]["ours_seconds"]) / ours_auto
    return result


def load_bench(path: str | None, overrides: list[str]):
    """The benchmark config from YAML and key=value overrides."""
    return config.load(Path(path) if path else None, overrides, schema=BenchConfig)
