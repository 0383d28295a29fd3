"""Benchmark results as a JSON file and a dated Markdown section appended to docs/benchmarks.md."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.lab.bench.measure import describe_cpu


def _median(values: list[float]) -> float:
    """Median of a short list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def write_json(result: dict, folder: str) -> Path:
    """Write the full result under a time-stamped name; never overwrite."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("bench-%Y%m%d-%H%M%S.json", time.gmtime())
    with open(path, "x") as f:
        json.dump(result, f, indent=2)
    return path


def _row(name: str, cells: list[str]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join([name, *cells]) + " |"


def markdown(result: dict, bench) -> str:
    """The dated section: same-work table per dtype, defaults, options, VAE tiling."""
    same, shares, dtypes = result["same_work"], result["shares"], list(result["same_work"])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"## {stamp}: {bench.model}, {result['device']} ({result['threads']} threads), torch {result['torch']}",
        "",
        _machine(result),
        "",
        f"{bench.height}x{bench.width}, {bench.steps} steps, {bench.scheduler}, guidance {bench.guidance_scale}, "
        f"{bench.num_images} image(s), {bench.repeats} interleaved repeats.",
        "",
        _row("measure", dtypes),
        _row("---", ["---"] * len(dtypes)),
        _row("ours s (median)", [f"{_median(same[d]['ours_seconds']):.2f}" for d in dtypes]),
        _row("diffusers s (median)", [f"{_median(same[d]['diffusers_seconds']):.2f}" for d in dtypes]),
        _row("ours / diffusers: median [min, max]",
             [f"{same[d]['ratio']['median']:.3f} [{same[d]['ratio']['min']:.3f}, {same[d]['ratio']['max']:.3f}]"
              for d in dtypes]),
        _row("peak memory MB: ours / diffusers",
             [f"{same[d]['ours_peak_mb']:.0f} / {same[d]['diffusers_peak_mb']:.0f}" for d in dtypes]),
        _row("max pixel diff ours vs diffusers", [f"{same[d]['vs_diffusers_pixels']['max']:.0f}" for d in dtypes]),
        _row("pixel error vs float32: max / mean",
             [f"{same[d]['vs_float32_pixels']['max']:.0f} / {same[d]['vs_float32_pixels']['mean']:.2f}" for d in dtypes]),
        _row("loop share: UNet / text / VAE decode / rest",
             [" / ".join(f"{100 * shares[d]['share'][k]:.1f}%" for k in ("unet", "text_encoder", "vae_decode", "rest"))
              for d in dtypes]),
        _row("UNet share of the denoising loop (UNet / (UNet + rest))",
             [f"{100 * shares[d]['unet_share_of_denoising']:.2f}%" for d in dtypes]),
        _row("UNet GFLOP per call", [f"{shares[d]['unet_gflop_per_call']:.1f}" for d in dtypes]),
        _row("UNet GFLOP/s vs GEMM GFLOP/s (GEMM n)",
             [f"{shares[d]['unet_gflops']:.0f} vs {shares[d]['gemm_gflops']:.0f} ({100 * shares[d]['fraction_of_gemm']:.0f}%, "
              f"n={shares[d]['gemm_n']})" for d in dtypes]),
        "",
        *[f"{name} not measured: {why}." for name, why in result.get("skipped_dtypes", {}).items()],
        f"Our defaults (model.dtype auto = {result['auto_dtype']}) vs diffusers' default float32: "
        f"**{result['defaults_speedup']:.2f}x** faster; {result['auto_dtype']} vs float32 in our pipeline: "
        f"{result['auto_vs_float32_speedup']:.2f}x.",
        "",
    ]
    lines += _options(result["options"], result["auto_dtype"])
    return "\n".join(lines) + "\n"


def _machine(result: dict) -> str:
    """The processor line every section carries: a figure means nothing without the machine it came from."""
    return f"{describe_cpu(result['cpu'])} model.dtype auto -> {result['auto_dtype']}: {result['auto_reason']}."


def _options(options: dict, auto: str) -> list[str]:
    """The options table, each against our default run in the auto dtype."""
    lines = [f"Options, each against our default run ({auto}, {options['baseline_seconds']:.2f} s):", "",
             "| option | seconds | vs default | UNet time vs default | max pixel diff | PSNR dB |", "|---|---|---|---|---|---|"]
    for name, o in options.items():
        if not isinstance(o, dict) or name == "vae_tiling":
            continue
        unet = f"{o['unet_vs_baseline']:.2f}" if "unet_vs_baseline" in o else "-"
        first = f" (first run {o['first_run_seconds']:.1f} s)" if "first_run_seconds" in o else ""
        lines.append(f"| {name} | {o['seconds']:.2f}{first} | {o['vs_baseline']:.2f} | {unet} | "
                     f"{o['pixels_vs_baseline']['max']:.0f} | {o['psnr_vs_baseline']:.1f} |")
    if "vae_tiling" in options:
        t = options["vae_tiling"]
        lines += ["", f"VAE decode of one {t['size']}x{t['size']} image: plain {t['plain']['seconds']:.1f} s, "
                      f"peak {t['plain']['peak_mb']:.0f} MB; tiled {t['tiled']['seconds']:.1f} s, "
                      f"peak {t['tiled']['peak_mb']:.0f} MB."]
    return lines + [""]


def append_docs(text: str, path: str) -> Path:
    """Append the section to the benchmarks document, creating it with a header if needed."""
    doc = Path(path)
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text("# Benchmarks\n\nEach section is appended by `scripts/benchmark.py`; numbers are measured, "
                       "never edited.\n\n")
    with open(doc, "a") as f:
        f.write(text)
    return doc
