"""The flow families at their real sizes on this machine (issue 29, item 6), random weights.

SD3.5 medium: its transformer built from the values of stabilityai/stable-diffusion-3.5-medium's
transformer/config.json and SD3's 16-channel VAE, the two CLIPs at their real widths (768, 1280, with projections)
but 2 layers each, no T5 (its slot is zeros, as diffusers runs SD3 without it); one guided step of our
generate_images against diffusers' StableDiffusion3Pipeline on the very same modules, interleaved, with peak memory.
FLUX.1-dev: its transformer at the real widths with one double-stream and one single-stream block, one call at the
size, each block's forward timed, so a full call (19 + 38 blocks) is estimated per block; and the memory every part
of the full model needs in each dtype, counted on the meta device.
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
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, SD3Transformer2DModel
from diffusers import StableDiffusion3Pipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from pipeline.engine.schedulers import make_scheduler
from pipeline.lab.bench.measure import cpu_description, describe_cpu, timed_calls
from pipeline.lab.bench.runs import pixel_error, run_diffusers, run_ours
from pipeline.lab.fixtures.tiny_sdxl import clip_tokenizers
from pipeline.models.components import Components, resolve_device
from pipeline.models.families.sd3 import SD3
from pipeline.run import config

SD35_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24, attention_head_dim=64,
                   num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                   pooled_projection_dim=2048, pos_embed_max_size=384, qk_norm="rms_norm",
                   dual_attention_layers=tuple(range(13)))
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
SD3_VAE = dict(in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               latent_channels=16, sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
               use_post_quant_conv=False)
FLUX_VAE = {**SD3_VAE, "scaling_factor": 0.3611, "shift_factor": 0.1159}
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu")
CLIPS = {"text_encoder": (768, 3072, 12, 12, "quick_gelu"), "text_encoder_2": (1280, 5120, 20, 32, "gelu")}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}


@dataclass
class FlowBenchConfig:
    """What to time: SD3.5 medium's guided step at each size (interleaved pairs), FLUX's blocks at flux_size."""

    device: str = "auto"
    sizes: list[int] = field(default_factory=lambda: [1024])
    repeats: list[int] = field(default_factory=lambda: [1])
    steps: int = 1
    guidance_scale: float = 4.5
    prompt: str = "a photograph of an astronaut riding a horse"
    seed: int = 0
    flux_size: int = 1024
    small: bool = False  # tiny widths (a test of the code path), not the real models


def clip_config(name: str, layers: int, small: bool) -> CLIPTextConfig:
    """A CLIP text config of the encoder's real width (or a tiny one) with `layers` layers and its projection."""
    hidden, mlp, heads, _, act = (32, 37, 4, 2, "gelu") if small else CLIPS[name]
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=mlp, num_attention_heads=heads,
                          num_hidden_layers=layers, max_position_embeddings=77, hidden_act=act, projection_dim=hidden,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)


def sd3_components(device: torch.device, small: bool, seed: int) -> Components:
    """SD3.5 medium in float32: the real transformer and VAE (or tiny ones), 2-layer CLIPs, no T5."""
    parts = dict(zip(("tokenizer", "tokenizer_2"), clip_tokenizers(Path(tempfile.mkdtemp(prefix="sd3-tok-")))))
    torch.manual_seed(seed)
    for name in CLIPS:
        parts[name] = CLIPTextModelWithProjection(clip_config(name, 2, small))
    transformer = dict(SD35_MEDIUM, num_layers=2, num_attention_heads=2, caption_projection_dim=128,
                       joint_attention_dim=128, pooled_projection_dim=64, dual_attention_layers=(0,)) if small \
        else SD35_MEDIUM
    parts["transformer"] = SD3Transformer2DModel(**transformer)
    parts["vae"] = AutoencoderKL(**dict(SD3_VAE, block_out_channels=(8, 8, 8, 8), norm_num_groups=8) if small
                                 else SD3_VAE)
    for name in ("text_encoder", "text_encoder_2", "transformer", "vae"):
        parts[name].to(device=device, dtype=torch.float32).eval().requires_grad_(False)
    scheduler = dict(FlowMatchEulerDiscreteScheduler(shift=3.0).config)
    return Components(parts, SD3, scheduler, device, torch.float32, "sd35-medium-random")


def reference_pipeline(components: Components) -> StableDiffusion3Pipeline:
    """diffusers' StableDiffusion3Pipeline on the very same module objects, without T5."""
    p = components.parts
    pipe = StableDiffusion3Pipeline(
        transformer=p["transformer"], vae=p["vae"], text_encoder=p["text_encoder"], tokenizer=p["tokenizer"],
        text_encoder_2=p["text_encoder_2"], tokenizer_2=p["tokenizer_2"], text_encoder_3=None, tokenizer_3=None,
        scheduler=make_scheduler("flow_euler", components.scheduler_config, {}, [0]))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_config(cfg: FlowBenchConfig, size: int):
    """Our generation config for one guided Euler step at size x size."""
    items = {"prompt": cfg.prompt, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale, "height": size,
             "width": size, "seed": cfg.seed, "scheduler.name": "flow_euler"}
    return config.load(None, [f"{k}={v}" for k, v in items.items()])


def measure_sd3(cfg: FlowBenchConfig, components: Components, pipe, size: int, repeats: int) -> dict:
    """Interleaved pairs at one size, the order alternating: seconds, transformer time, peak memory."""
    run_cfg, seeds, runs, images = run_config(cfg, size), [cfg.seed], {"ours": [], "diffusers": []}, {}
    load = os.getloadavg()[0]
    for pair in range(repeats):
        for who in (("ours", "diffusers") if pair % 2 == 0 else ("diffusers", "ours")):
            with timed_calls(components.device, {"transformer": (components.unet, "forward")}) as inside:
                run = run_ours(components, run_cfg, seeds) if who == "ours" else \
                    run_diffusers(pipe, run_cfg, seeds, components.scheduler_config)
            images[who] = run.images
            runs[who].append({"seconds": run.seconds, "transformer_s": inside["transformer"], "peak_mb": run.peak_mb})
    result = {"size": size, "repeats": repeats, "load": [load, os.getloadavg()[0]],
              "ratio": [o["seconds"] / d["seconds"] for o, d in zip(runs["ours"], runs["diffusers"])],
              "pixels": pixel_error(images["ours"], images["diffusers"])}
    for who, measured in runs.items():
        result[who] = {"seconds": statistics.median(m["seconds"] for m in measured),
                       "transformer_s": statistics.median(m["transformer_s"] for m in measured),
                       "peak_mb": max(m["peak_mb"] for m in measured)}
    return result


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@torch.no_grad()
def flux_blocks(cfg: FlowBenchConfig, device: torch.device) -> dict:
    """One FLUX-dev call at flux_size with one block of each kind at the real widths: each block's seconds."""
    small = dict(num_attention_heads=2, attention_head_dim=16, axes_dims_rope=(4, 4, 8), joint_attention_dim=32,
                 pooled_projection_dim=32) if cfg.small else {}
    torch.manual_seed(cfg.seed)
    model = FluxTransformer2DModel(**{**FLUX_DEV, "num_layers": 1, "num_single_layers": 1, **small}).to(device).eval()
    tokens, text = (cfg.flux_size // 16) ** 2, 512
    args = dict(hidden_states=torch.randn(1, tokens, 64), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
                encoder_hidden_states=torch.randn(1, text, model.config.joint_attention_dim),
                pooled_projections=torch.randn(1, model.config.pooled_projection_dim), txt_ids=torch.zeros(text, 3),
                img_ids=torch.zeros(tokens, 3))
    model(**args)  # warm-up
    targets = {"double": (model.transformer_blocks[0], "forward"),
               "single": (model.single_transformer_blocks[0], "forward")}
    started = time.perf_counter()
    with timed_calls(device, targets) as inside:
        model(**args)
    call = time.perf_counter() - started
    rest = call - inside["double"] - inside["single"]
    return {"tokens": tokens + text, "double_s": inside["double"], "single_s": inside["single"], "rest_s": rest,
            "full_call_s": 19 * inside["double"] + 38 * inside["single"] + rest}


def flux_memory() -> dict:
    """Bytes per dtype of each part of the full FLUX.1-dev (transformer, T5-XXL, CLIP-L, VAE), on the meta device."""
    with torch.device("meta"):
        counts = {"transformer": FluxTransformer2DModel(**FLUX_DEV), "text_encoder_2 (T5-XXL)": T5EncoderModel(
            T5Config(**T5_XXL)), "text_encoder (CLIP-L)": CLIPTextModel(clip_config("text_encoder", 12, False)),
            "vae": AutoencoderKL(**FLUX_VAE)}
        counts = {name: sum(p.numel() for p in model.parameters()) for name, model in counts.items()}
    return {"params": counts, "gb": {dtype: {name: n * size / 2**30 for name, n in counts.items()}
                                     for dtype, size in DTYPE_BYTES.items()}}


def run_flow_bench(cfg: FlowBenchConfig) -> dict:
    """Build SD3.5 medium once, warm up, measure each size; then FLUX's blocks and memory."""
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    components = sd3_components(device, cfg.small, cfg.seed)
    params = {name: sum(p.numel() for p in components.parts[name].parameters())
              for name in ("transformer", "vae", "text_encoder", "text_encoder_2")}
    result = {"cpu": cpu_description(), "torch": torch.__version__, "device": device.type, "params": params,
              "build_s": time.perf_counter() - started, "rss_after_build_mb": rss_mb(), "sizes": []}
    pipe = reference_pipeline(components)
    run_ours(components, run_config(cfg, cfg.sizes[0]), [cfg.seed])  # warm-up
    for size, repeats in zip(cfg.sizes, cfg.repeats):
        result["sizes"].append(measure_sd3(cfg, components, pipe, size, repeats))
    result["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del pipe, components
    result["flux"] = {**flux_blocks(cfg, device), **flux_memory()}
    return result


def load_flow_bench(path: str | None, overrides: list[str]):
    """The config from YAML and key=value overrides, with the strict schema."""
    return config.load(Path(path) if path else None, overrides, schema=FlowBenchConfig)
