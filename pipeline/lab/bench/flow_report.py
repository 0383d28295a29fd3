"""The flow benchmark's dated section for docs/benchmarks.md (pipeline/lab/bench/flow.py)."""

from __future__ import annotations

import statistics
import time

from pipeline.lab.bench.measure import describe_cpu

MACHINE_GB = 24  # this project's machines' memory


def markdown(result: dict, cfg) -> str:
    """SD3.5 medium's guided step per size (ours vs diffusers), FLUX's per-block cost and memory per dtype."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    params = result["params"]
    lines = [f"## {stamp}: SD3.5 medium, one guided step; FLUX.1-dev per block; {result['device']}, torch "
             f"{result['torch']}", "", describe_cpu(result["cpu"]), "",
             f"float32; Euler (flow), {cfg.steps} step(s), guidance {cfg.guidance_scale}, 1 image (batch 2), no T5. "
             f"Parameters: transformer {params['transformer']:,}, VAE {params['vae']:,}, CLIPs (2 layers) "
             f"{params['text_encoder']:,} + {params['text_encoder_2']:,}. Built in {result['build_s']:.0f} s; resident "
             f"{result['rss_after_build_mb']:.0f} MB after building.", "",
             "| measure | " + " | ".join(f"{r['size']}x{r['size']}" for r in result["sizes"]) + " |",
             "|---|" + "---|" * len(result["sizes"])]
    rows = {
        "pairs (load average before, after)": lambda r: f"{r['repeats']} ({r['load'][0]:.1f}, {r['load'][1]:.1f})",
        "ours s / diffusers s (median)": lambda r: f"{r['ours']['seconds']:.1f} / {r['diffusers']['seconds']:.1f}",
        "ours / diffusers: median [min, max]": lambda r: (f"{statistics.median(r['ratio']):.3f} "
                                                          f"[{min(r['ratio']):.3f}, {max(r['ratio']):.3f}]"),
        "transformer s: ours / diffusers": lambda r: (f"{r['ours']['transformer_s']:.1f} / "
                                                      f"{r['diffusers']['transformer_s']:.1f}"),
        "peak memory above start MB: ours / diffusers": lambda r: f"{r['ours']['peak_mb']:.0f} / "
                                                                  f"{r['diffusers']['peak_mb']:.0f}",
        "max pixel diff ours vs diffusers": lambda r: f"{r['pixels']['max']:.0f}",
    }
    lines += [f"| {name} | " + " | ".join(cell(r) for r in result["sizes"]) + " |" for name, cell in rows.items()]
    flux = result["flux"]
    lines += ["", f"Peak resident memory of the process: {result['process_peak_rss_mb']:.0f} MB.", "",
              f"FLUX.1-dev at {cfg.flux_size}x{cfg.flux_size} ({flux['tokens']} tokens, batch 1, its distilled "
              f"guidance: one call a step): a double-stream block {flux['double_s']:.2f} s, a single-stream block "
              f"{flux['single_s']:.2f} s, the rest {flux['rest_s']:.2f} s; a full call (19 + 38 blocks) "
              f"**~{flux['full_call_s']:.0f} s** a step in float32.", "",
              "| FLUX.1-dev part | parameters | float32 GB | bfloat16 GB |", "|---|---|---|---|"]
    gb = flux["gb"]
    for name, count in flux["params"].items():
        lines.append(f"| {name} | {count:,} | {gb['float32'][name]:.1f} | {gb['bfloat16'][name]:.1f} |")
    totals = {dtype: sum(parts.values()) for dtype, parts in gb.items()}
    lines.append(f"| all | {sum(flux['params'].values()):,} | {totals['float32']:.1f} | {totals['bfloat16']:.1f} |")
    return "\n".join(lines) + "\n"
