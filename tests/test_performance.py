"""The performance options do what they say; speed itself is measured by scripts/benchmark.py, never here."""

import logging

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor
from PIL import Image

from conftest import generators, make_config, max_pixel_difference
from pipeline.run import generate
from pipeline.models.components import load_components
from pipeline.models.inspect import inspect_model
from pipeline.common.errors import UserError
from pipeline.engine.latents import decode
from pipeline.speed.performance import apply_performance, check_performance
from pipeline.engine.schedulers import make_scheduler


def loaded(tiny_model, dtype=torch.float32):
    return load_components(inspect_model(str(tiny_model)), torch.device("cpu"), dtype)


def test_guidance_cutoff_drops_the_unconditional_pass(tiny_model, tmp_path):
    cfg = make_config(tiny_model, tmp_path, steps=4, scheduler__name="ddim", num_images=2,
                      performance__guidance_cutoff=0.5)
    components = loaded(tiny_model)
    sizes = []
    components.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    generate.generate_images(components, cfg, [0, 1], 16, 16, progress=False)
    assert sizes == [4, 4, 2, 2]


def test_guidance_cutoff_matches_diffusers_dynamic_cfg_callback(tiny_model, reference_pipe, tmp_path):
    """diffusers' documented way: a step-end callback drops the unconditional half and sets the scale to 0."""
    steps, cutoff, seed = 6, 0.5, 3
    last_guided = int(steps * cutoff) - 1

    def dynamic_cfg(pipe, i, t, kwargs):
        if i == last_guided:
            kwargs["prompt_embeds"] = kwargs["prompt_embeds"].chunk(2)[-1]
            pipe._guidance_scale = 0.0
        return kwargs

    reference_pipe.scheduler = make_scheduler("euler_a", reference_pipe.original_scheduler_config, {}, [seed])
    reference = reference_pipe("a red circle", num_inference_steps=steps, generator=generators(seed, 2),
                               num_images_per_prompt=2, output_type="np", callback_on_step_end=dynamic_cfg,
                               callback_on_step_end_tensor_inputs=["prompt_embeds"]).images
    cfg = make_config(tiny_model, tmp_path, steps=steps, scheduler__name="euler_a", seed=seed, num_images=2,
                      prompt="a red circle", performance__guidance_cutoff=cutoff)
    mine = [Image.open(p) for p in generate.run(cfg, progress=False)]
    assert max_pixel_difference(mine, reference) <= 2
    uncut = [Image.open(p) for p in generate.run(make_config(tiny_model, tmp_path / "full", steps=steps,
             scheduler__name="euler_a", seed=seed, num_images=2, prompt="a red circle"), progress=False)]
    assert max_pixel_difference(mine, uncut) > 0, "the cutoff changed nothing"


def test_options_are_applied(tiny_model):
    components = loaded(tiny_model)
    apply_performance(components, make_config(tiny_model, ".").performance)
    assert all(isinstance(p, AttnProcessor2_0) for p in components.unet.attn_processors.values())
    cfg = make_config(tiny_model, ".", performance__attention_slicing="true", performance__channels_last="true",
                      performance__vae_tiling="true", performance__vae_slicing="true")
    apply_performance(components, cfg.performance)
    assert all(isinstance(p, SlicedAttnProcessor) for p in components.unet.attn_processors.values())
    assert components.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert components.vae.use_tiling and components.vae.use_slicing


def test_options_keep_the_image(tiny_model, tmp_path):
    """Slicing, channels_last and VAE slicing change how, not what: the same image within 2/255."""
    base = make_config(tiny_model, tmp_path / "a", steps=3, num_images=2, batch_size=2)
    fast = make_config(tiny_model, tmp_path / "b", steps=3, num_images=2, batch_size=2,
                       performance__attention_slicing="true", performance__channels_last="true",
                       performance__vae_slicing="true")
    images = [[Image.open(p) for p in generate.run(cfg, progress=False)] for cfg in (base, fast)]
    assert max_pixel_difference(*images) <= 2


def test_bad_option_values():
    perf = make_config(".", ".", performance__guidance_cutoff=1.5).performance
    with pytest.raises(UserError, match="guidance_cutoff must be a fraction in"):
        check_performance(perf, torch.device("cpu"))
    perf = make_config(".", ".", performance__cpu_offload="true").performance
    with pytest.raises(UserError, match="cpu_offload needs model.device cuda"):
        check_performance(perf, torch.device("cpu"))
    perf = make_config(".", ".", performance__sequential_offload="true").performance
    with pytest.raises(UserError, match="sequential_offload needs model.device cuda"):
        check_performance(perf, torch.device("cpu"))
    perf = make_config(".", ".", performance__sequential_offload="true", performance__cpu_offload="true").performance
    with pytest.raises(UserError, match="two ways of offloading"):
        check_performance(perf, torch.device("cuda"))


def test_half_precision_vae_nan_is_retried_in_float32(tiny_model, caplog):
    vae = loaded(tiny_model, torch.bfloat16).vae
    real = type(vae).decode

    def overflowing(self, z, **kwargs):
        out = real(self, z, **kwargs)
        return (out[0] * float("nan"),) if self.dtype == torch.bfloat16 else out

    vae.decode = overflowing.__get__(vae)
    latents = torch.randn(1, 4, 8, 8, dtype=torch.bfloat16)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        images = decode(vae, latents)
    assert torch.isfinite(images).all() and vae.dtype == torch.bfloat16  # back in its dtype for the next encode
    assert "decoding again in float32" in caplog.text
    assert np.isfinite(images.numpy()).all()
