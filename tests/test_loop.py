"""The loop's contract: one batched UNet call per step, no unconditional pass without CFG, callbacks, guidance maths."""

import torch

from conftest import make_config
from pipeline.run import generate
from pipeline.models.components import load_components
from pipeline.models.inspect import inspect_model
from pipeline.engine.guidance import guide, rescale_to


def unet_batches(tiny_model, tmp_path, **settings):
    """Run once and record the batch size of every UNet call."""
    cfg = make_config(tiny_model, tmp_path, steps=4, **settings)
    components = load_components(inspect_model(str(tiny_model)), torch.device("cpu"), torch.float32)
    sizes = []
    components.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    steps = []
    generate.generate_images(components, cfg, [cfg.seed + i for i in range(cfg.num_images)], 16, 16,
                             progress=False, callback=lambda i, t, latents: steps.append((i, latents.shape)))
    return sizes, steps


def test_one_batched_call_per_step_with_guidance(tiny_model, tmp_path):
    sizes, steps = unet_batches(tiny_model, tmp_path, scheduler__name="ddim", num_images=3, guidance_scale=7.5)
    assert sizes == [6, 6, 6, 6]  # unconditional + conditional halves in one call
    assert [i for i, _ in steps] == [0, 1, 2, 3] and steps[0][1] == (3, 4, 8, 8)


def test_no_unconditional_pass_without_guidance(tiny_model, tmp_path):
    for scale in (1.0, 0.5):
        sizes, _ = unet_batches(tiny_model, tmp_path, scheduler__name="ddim", num_images=3, guidance_scale=scale)
        assert sizes == [3, 3, 3, 3]


def test_second_order_scheduler_calls_the_unet_per_timestep(tiny_model, tmp_path):
    sizes, steps = unet_batches(tiny_model, tmp_path, scheduler__name="heun", num_images=1)
    assert len(sizes) == len(steps) == 2 * 4 - 1


def test_guidance_formula():
    uncond, cond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert torch.allclose(guide(uncond, cond, 1.0), cond, atol=1e-6)
    assert torch.allclose(guide(uncond, cond, 3.0), uncond + 3.0 * (cond - uncond))


def test_rescale_matches_the_conditional_std():
    uncond, cond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8) * 0.5
    guided = guide(uncond, cond, 7.5)
    full = rescale_to(guided, cond, 1.0)
    assert torch.allclose(full.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)), rtol=1e-5)
    assert torch.allclose(rescale_to(guided, cond, 0.0), guided)
    assert torch.allclose(guide(uncond, cond, 7.5, rescale=0.7), 0.7 * full + 0.3 * guided, atol=1e-6)
