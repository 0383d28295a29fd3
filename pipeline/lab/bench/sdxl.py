"""SDXL base at its real UNet size with random weights: one guided step, ours vs diffusers' StableDiffusionXLPipeline
on the very same modules (one UNet in memory), interleaved; peak memory and the UNet's share of the GEMM rate.

The UNet and VAE values are those of stabilityai/stable-diffusion-xl-base-1.0's unet/config.json and vae/config.json
(2,567,463,684 UNet parameters), written out by hand. The two text encoders have the real widths (768 and 1280, so
the joined states are the UNet's 2048 and the pooled embedding its 1280) but 2 layers each; the memory of the real
ones (12 and 32 layers) is counted on the meta device and added for the full-model estimate.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from pipeline.common.errors import UserError
from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.bench.measure import cpu_description, describe_cpu, gemm_rate, timed_calls
from pipeline.lab.bench.runs import pixel_error, run_diffusers, run_ours
from pipeline.lab.fixtures.tiny_model import write_tokenizer
from pipeline.lab.fixtures.tiny_sdxl import sdxl_scheduler
from pipeline.models.components import Components, load_components, resolve_device
from pipeline.models.families.sdxl import SDXL
from pipeline.models.inspect import inspect_model
from pipeline.run import config

UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20),
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
    cross_attention_dim=2048,
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=True,
)
# (hidden size, MLP size, heads, activation) of CLIP ViT-L and OpenCLIP ViT-bigG, the real layer counts beside.
ENCODERS = {"text_encoder": (768, 3072, 12, "quick_gelu"), "text_encoder_2": (1280, 5120, 20, "gelu")}
REAL_LAYERS = {"text_encoder": 12, "text_encoder_2": 32}
SMALL_LAYERS = 2


@dataclass
class SdxlBenchConfig:
    """What to time: the model ('sdxl-random' or an SDXL folder), the sizes and repeats of each, one guided step."""

    model: str = "sdxl-random"
    device: str = "auto"
    sizes: list[int] = field(default_factory=lambda: [512, 1024])
    repeats: list[int] = field(default_factory=lambda: [3, 2])  # interleaved pairs per size
    steps: int = 1
    guidance_scale: float = 5.0
    scheduler: str = "euler"
    prompt: str = "a photograph of an astronaut riding a horse"
    seed: int = 0
    gemm_budget_s: float = 3.0


def text_config(name: str, layers: int) -> CLIPTextConfig:
    """A CLIP text config of the encoder's real width with `layers` layers (byte tokenizer's vocabulary)."""
    hidden, mlp, heads, act = ENCODERS[name]
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=mlp, num_attention_heads=heads,
                          num_hidden_layers=layers, max_position_embeddings=77, hidden_act=act, projection_dim=hidden,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)


def text_encoder(name: str, layers: int):
    """The encoder as SDXL holds it: the second one with its pooled projection."""
    cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
    return cls(text_config(name, layers))


def real_text_extra_bytes() -> int:
    """float32 bytes the real text encoders hold beyond the 2-layer ones (counted on the meta device)."""
    with torch.device("meta"):
        counts = [sum(p.numel() for p in text_encoder(name, layers).parameters())
                  for name in ENCODERS for layers in (REAL_LAYERS[name], SMALL_LAYERS)]
    return 4 * (counts[0] - counts[1] + counts[2] - counts[3])


def build_sdxl(device: torch.device, seed: int = 0) -> Components:
    """SDXL base components in float32: the real-size UNet and VAE with random weights, 2-layer text encoders."""
    folder = Path(tempfile.mkdtemp(prefix="sdxl-tokenizers-"))
    parts = {"tokenizer": write_tokenizer(folder / "1"), "tokenizer_2": write_tokenizer(folder / "2", "!")}
    torch.manual_seed(seed)
    for name in ENCODERS:
        parts[name] = text_encoder(name, SMALL_LAYERS)
    parts["vae"] = AutoencoderKL(**VAE)
    parts["unet"] = UNet2DConditionModel(**UNET)
    for part in SDXL.weighted:
        parts[part.name].to(device=device, dtype=torch.float32).eval().requires_grad_(False)
    return Components(parts, SDXL, dict(sdxl_scheduler().config), device, torch.float32, "sdxl-random",
                      settings={"force_zeros_for_empty_prompt": True})


def load(cfg: SdxlBenchConfig, device: torch.device) -> Components:
    """The benchmarked components: built at the real size, or loaded from an SDXL folder in float32."""
    if cfg.model == "sdxl-random":
        return build_sdxl(device, cfg.seed)
    components = load_components(inspect_model(cfg.model), device, torch.float32)
    if components.family is not SDXL:
        raise UserError(f"model must be 'sdxl-random' or an SDXL base folder; {cfg.model} is {components.family.label}.")
    return components


def reference_pipeline(components: Components) -> StableDiffusionXLPipeline:
    """diffusers' StableDiffusionXLPipeline assembled from the very same module objects (no watermark)."""
    parts = components.parts
    pipe = StableDiffusionXLPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], text_encoder_2=parts["text_encoder_2"],
        tokenizer=parts["tokenizer"], tokenizer_2=parts["tokenizer_2"], unet=parts["unet"],
        scheduler=make_scheduler("euler", components.scheduler_config, {}, [0]),
        force_zeros_for_empty_prompt=components.settings.get("force_zeros_for_empty_prompt", True),
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unet_flops(unet, batch: int, latent_hw: tuple[int, int]) -> int:
    """FLOPs of one SDXL base UNet call (6 time ids), counted by torch.utils.flop_counter on a meta-device copy."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = UNet2DConditionModel.from_config(unet.config)
        sample = torch.zeros(batch, unet.config.in_channels, *latent_hw)
        context = torch.zeros(batch, 77, unet.config.cross_attention_dim)
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        added = {"text_embeds": torch.zeros(batch, pooled), "time_ids": torch.zeros(batch, 6)}
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(sample, torch.tensor(500), encoder_hidden_states=context, added_cond_kwargs=added)
    return counter.get_total_flops()


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_config(cfg: SdxlBenchConfig, size: int):
    """Our generation config for one guided step at size x size."""
    items = {"prompt": cfg.prompt, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale, "height": size,
             "width": size, "seed": cfg.seed, "scheduler.name": cfg.scheduler}
    return config.load(None, [f"{k}={v}" for k, v in items.items()])


def one_run(who: str, components: Components, pipe, run_cfg, seeds: list[int]) -> tuple[dict, list]:
    """One timed generation, ours or diffusers': wall seconds, time inside UNet calls and VAE decodes, peak memory
    above the start and absolute (sampled resident memory)."""
    start = rss_mb()
    targets = {"unet": (components.unet, "forward"), "vae_decode": (components.vae, "decode")}
    with timed_calls(components.device, targets) as inside:
        if who == "ours":
            run = run_ours(components, run_cfg, seeds)
        else:
            run = run_diffusers(pipe, run_cfg, seeds, components.scheduler_config)
    return {"seconds": run.seconds, "unet_s": inside["unet"], "unet_calls": inside["unet_calls"],
            "vae_decode_s": inside["vae_decode"], "peak_mb": run.peak_mb, "peak_rss_mb": start + run.peak_mb}, run.images


def measure_size(cfg: SdxlBenchConfig, components: Components, pipe, size: int, repeats: int) -> dict:
    """Interleaved pairs at one size (the order alternates so drift falls on both), then this machine's GEMM rate."""
    run_cfg, seeds = run_config(cfg, size), [cfg.seed]
    runs, images = {"ours": [], "diffusers": []}, {}
    load_before = os.getloadavg()[0]
    for pair in range(repeats):
        for who in (("ours", "diffusers") if pair % 2 == 0 else ("diffusers", "ours")):
            measured, images[who] = one_run(who, components, pipe, run_cfg, seeds)
            runs[who].append(measured)
    gemm, gemm_n = gemm_rate(components.device, torch.float32, cfg.gemm_budget_s)
    factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
    flops = unet_flops(components.unet, 2, (size // factor, size // factor))
    result = {"size": size, "repeats": repeats, "load": [load_before, os.getloadavg()[0]],
              "ratio": [o["seconds"] / d["seconds"] for o, d in zip(runs["ours"], runs["diffusers"])],
              "pixels": pixel_error(images["ours"], images["diffusers"]), "gemm_gflops": gemm / 1e9,
              "gemm_n": gemm_n, "unet_gflop_per_call": flops / 1e9}
    for who, measured in runs.items():
        unet_s = statistics.median(m["unet_s"] / m["unet_calls"] for m in measured)
        result[who] = {"runs": measured, "seconds": statistics.median(m["seconds"] for m in measured),
                       "unet_s_per_call": unet_s, "vae_decode_s": statistics.median(m["vae_decode_s"] for m in measured),
                       "peak_mb": max(m["peak_mb"] for m in measured),
                       "peak_rss_mb": max(m["peak_rss_mb"] for m in measured),
                       "unet_gflops": result["unet_gflop_per_call"] / unet_s}
    return result


def run_sdxl_bench(cfg: SdxlBenchConfig) -> dict:
    """Build once, warm up at the first size, then measure every size in this one process."""
    if len(cfg.sizes) != len(cfg.repeats) or min(cfg.repeats, default=0) < 1 or any(s % 8 for s in cfg.sizes):
        raise UserError("sizes and repeats must be lists of the same length, sizes multiples of 8, repeats >= 1.")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    before = rss_mb()
    started = time.perf_counter()
    components = load(cfg, device)
    weights = {part.name: sum(p.numel() for p in components.parts[part.name].parameters())
               for part in SDXL.weighted}
    result = {"cpu": cpu_description(), "torch": torch.__version__, "device": device.type, "model": cfg.model,
              "build_s": time.perf_counter() - started, "params": weights, "rss_after_build_mb": rss_mb(),
              "rss_before_build_mb": before, "sizes": []}
    if cfg.model == "sdxl-random":
        result["real_text_extra_mb"] = real_text_extra_bytes() / 2**20
    pipe = reference_pipeline(components)
    run_ours(components, run_config(cfg, cfg.sizes[0]), [cfg.seed])  # warm-up: first calls allocate, pick kernels
    for size, repeats in zip(cfg.sizes, cfg.repeats):
        result["sizes"].append(measure_size(cfg, components, pipe, size, repeats))
    result["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def markdown(result: dict, cfg: SdxlBenchConfig) -> str:
    """A dated section for docs/benchmarks.md: per size, seconds, ratio, UNet rate against the GEMM, memory."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    params = result["params"]
    lines = [f"## {stamp}: SDXL base, one guided step, {cfg.model}, {result['device']}, torch {result['torch']}", "",
             describe_cpu(result["cpu"]), "",
             f"float32; {cfg.scheduler}, {cfg.steps} step(s), guidance {cfg.guidance_scale}, 1 image (UNet batch 2). "
             f"Parameters: UNet {params['unet']:,}, VAE {params['vae']:,}, text encoders "
             f"{params['text_encoder']:,} + {params['text_encoder_2']:,}. Built in {result['build_s']:.0f} s; "
             f"resident memory {result['rss_after_build_mb']:.0f} MB after building "
             f"({result['rss_before_build_mb']:.0f} MB before).", "",
             "| measure | " + " | ".join(f"{r['size']}x{r['size']}" for r in result["sizes"]) + " |",
             "|---|" + "---|" * len(result["sizes"])]
    rows = {
        "interleaved pairs (load average before, after)":
            lambda r: f"{r['repeats']} ({r['load'][0]:.1f}, {r['load'][1]:.1f})",
        "ours s (median)": lambda r: f"{r['ours']['seconds']:.2f}",
        "diffusers s (median)": lambda r: f"{r['diffusers']['seconds']:.2f}",
        "ours / diffusers: median [min, max]": lambda r: (f"{statistics.median(r['ratio']):.3f} "
                                                          f"[{min(r['ratio']):.3f}, {max(r['ratio']):.3f}]"),
        "UNet s per call: ours / diffusers": lambda r: (f"{r['ours']['unet_s_per_call']:.2f} / "
                                                        f"{r['diffusers']['unet_s_per_call']:.2f}"),
        "VAE decode s: ours / diffusers": lambda r: f"{r['ours']['vae_decode_s']:.2f} / {r['diffusers']['vae_decode_s']:.2f}",
        "UNet GFLOP per call": lambda r: f"{r['unet_gflop_per_call']:.0f}",
        "UNet GFLOP/s (ours) vs GEMM GFLOP/s (n)": lambda r: (
            f"{r['ours']['unet_gflops']:.0f} vs {r['gemm_gflops']:.0f} "
            f"({100 * r['ours']['unet_gflops'] / r['gemm_gflops']:.0f}%, n={r['gemm_n']})"),
        "peak memory above start MB: ours / diffusers": lambda r: f"{r['ours']['peak_mb']:.0f} / {r['diffusers']['peak_mb']:.0f}",
        "peak resident memory MB: ours / diffusers": lambda r: (f"{r['ours']['peak_rss_mb']:.0f} / "
                                                               f"{r['diffusers']['peak_rss_mb']:.0f}"),
        "max pixel diff ours vs diffusers": lambda r: f"{r['pixels']['max']:.0f}",
    }
    lines += [f"| {name} | " + " | ".join(cell(r) for r in result["sizes"]) + " |" for name, cell in rows.items()]
    peak = max(r[who]["peak_rss_mb"] for r in result["sizes"] for who in ("ours", "diffusers"))
    lines += ["", f"Peak resident memory of the whole process (getrusage): {result['process_peak_rss_mb']:.0f} MB; "
              f"sampled peak during a run: {peak:.0f} MB."]
    if "real_text_extra_mb" in result:
        full = peak + result["real_text_extra_mb"]
        lines[-1] += (f" The real text encoders (12 and 32 layers) would add {result['real_text_extra_mb']:.0f} MB: "
                      f"about {full:.0f} MB for the full model, {'within' if full < 24 * 1024 else 'over'} 24 GB.")
    return "\n".join(lines) + "\n"


def load_sdxl_bench(path: str | None, overrides: list[str]):
    """The config from YAML and key=value overrides, with the strict schema."""
    return config.load(Path(path) if path else None, overrides, schema=SdxlBenchConfig)
