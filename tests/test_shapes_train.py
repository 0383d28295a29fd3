"""The training entry point runs every stage end to end, resumes, and exports a loadable folder."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import (
    StableDiffusionDepth2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel,
)
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from pipeline.common.errors import UserError
from pipeline.lab.shapes.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "train-tiny.yaml")


def test_tiny_recipe_end_to_end_exports_loadable_pipeline(tmp_path: Path) -> None:
    export, depth, inpaint = tmp_path / "model", tmp_path / "depth", tmp_path / "inpaint"
    main([TINY, f"run_dir={tmp_path / 'run'}", f"export_dir={export}", "until=inpaint", f"depth.export_dir={depth}",
          f"inpaint.export_dir={inpaint}", "beta_end=0.03", "export_dtype=float16", "inpaint.kept_weight=3"])
    stored_files = [folder / "unet" / "diffusion_pytorch_model.safetensors" for folder in (export, depth, inpaint)]
    stored_files.append(export / "vae" / "diffusion_pytorch_model.safetensors")
    for path in stored_files:  # the UNets and the VAE stored in half precision
        with safe_open(path, "pt") as stored:
            assert {stored.get_slice(k).get_dtype() for k in stored.keys()} == {"F16"}
    with safe_open(export / "text_encoder" / "model.safetensors", "pt") as stored:
        assert {stored.get_slice(k).get_dtype() for k in stored.keys()} == {"F32"}
    assert json.loads((export / "scheduler" / "scheduler_config.json").read_text())["beta_end"] == 0.03
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["stages"]) == {"vae", "latents", "unet", "export", "depth", "inpaint"}
    assert summary["evals"][-1]["final"]
    assert not list(export.rglob("*.bin")) and not list(export.rglob("*.pt"))
    vae_config = json.loads((export / "vae" / "config.json").read_text())
    assert vae_config["scaling_factor"] == summary["stages"]["latents"]["scaling_factor"]

    pipe = StableDiffusionPipeline.from_pretrained(export, safety_checker=None)
    assert pipe.unet.config.sample_size * 8 == 64
    image = pipe(
        "a large red circle in the centre, blue background", num_inference_steps=2,
        height=64, width=64, generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)

    depth_unet = UNet2DConditionModel.from_pretrained(depth, subfolder="unet")
    assert depth_unet.config.in_channels == 5
    assert (depth / "vae").is_symlink() and (depth / "vae" / "config.json").is_file()
    depth_pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(depth, depth_estimator=None, feature_extractor=None)
    assert depth_pipe(
        "a large red circle in the centre, blue background", image=image, num_inference_steps=2,
        depth_map=torch.rand(1, 64, 64), generator=torch.Generator().manual_seed(0),
    ).images[0].size == (64, 64)

    assert UNet2DConditionModel.from_pretrained(inpaint, subfolder="unet").config.in_channels == 9
    assert (inpaint / "text_encoder").is_symlink() and (inpaint / "tokenizer" / "vocab.json").is_file()
    inpaint_pipe = StableDiffusionInpaintPipeline.from_pretrained(inpaint, safety_checker=None)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    assert inpaint_pipe(
        "a large red circle in the centre, blue background", image=image, mask_image=mask, num_inference_steps=2,
        height=64, width=64, generator=torch.Generator().manual_seed(0),
    ).images[0].size == (64, 64)


def test_resumed_stage_matches_uninterrupted_one(tmp_path: Path) -> None:
    weights = "vae/final/diffusion_pytorch_model.safetensors"
    main([TINY, f"run_dir={tmp_path / 'whole'}", "until=vae", "vae.steps=4"])
    main([TINY, f"run_dir={tmp_path / 'cut'}", "until=vae", "vae.steps=2"])
    shutil.rmtree(tmp_path / "cut" / "vae" / "final")
    main([TINY, f"run_dir={tmp_path / 'cut'}", "until=vae", "vae.steps=4"])
    whole, cut = load_file(tmp_path / "whole" / weights), load_file(tmp_path / "cut" / weights)
    assert all(torch.equal(whole[key], cut[key]) for key in whole)


def test_config_typo_is_one_clear_error(tmp_path: Path, capsys) -> None:
    for override, expected in (("vae.stepz=3", "unknown key 'vae.stepz'"), ("until=everything", "until must be"),
                               ("prediction_type=sample", "prediction_type must be")):
        with pytest.raises(SystemExit) as stop:
            main([TINY, f"run_dir={tmp_path}", override])
        assert stop.value.code == 2 and expected in capsys.readouterr().err


def test_recipe_precision_follows_inferences_rule(monkeypatch):
    """precision: auto autocasts to bfloat16 only where the CPU runs it natively (emulated it is ~100x slower) and
    the recipe's UNet has the 20M parameters from which bfloat16 pays (pipeline/models/precision.py); below, float32."""
    from pipeline.models import precision
    from pipeline.lab.shapes import train_config

    assert train_config.load_config("configs/train.yaml").precision == "auto"
    large = ["unet.block_out_channels=[320,640,1280]", "unet.cross_attention_levels=[true,true,true]",
             "unet.norm_num_groups=32"]
    for native in (True, False):
        monkeypatch.setattr(precision, "cpu_bfloat16_support", lambda native=native: (native, "patched"))
        small = train_config.load_config("configs/train.yaml")
        assert small.bf16 is False and ("too few" in small.autocast.reason) is native
        assert train_config.load_config("configs/train.yaml", large).bf16 is native
    assert train_config.load_config("configs/train.yaml", ["precision=float32"]).bf16 is False
    assert train_config.load_config("configs/train.yaml", ["precision=bfloat16"]).bf16 is True
    with pytest.raises(UserError, match="precision must be one of auto, float32, bfloat16; got 'fp8'"):
        train_config.load_config("configs/train.yaml", ["precision=fp8"])


def test_loss_targets_and_weights_follow_the_prediction_type() -> None:
    from diffusers import DDPMScheduler

    from pipeline.lab.shapes.models import scheduler_config
    from pipeline.lab.shapes.model_configs import UnetConfig
    from pipeline.lab.shapes.unet_train import min_snr_weights, step_gamma

    scheduler = DDPMScheduler.from_config(scheduler_config(0.012, "v_prediction"))
    t = torch.tensor([10, 500, 990])
    alpha = scheduler.alphas_cumprod[t]
    snr = alpha / (1 - alpha)
    assert torch.allclose(min_snr_weights(scheduler.alphas_cumprod, t, 5.0), snr.clamp(max=5) / snr)
    assert torch.allclose(min_snr_weights(scheduler.alphas_cumprod, t, 5.0, "v_prediction"), snr.clamp(max=5) / (snr + 1))
    floored = min_snr_weights(scheduler.alphas_cumprod, t, 5.0, "v_prediction", floor=1.0)
    assert torch.allclose(floored, (snr.clamp(max=5) + 1) / (snr + 1))
    assert floored[-1] > 0.99 and min_snr_weights(scheduler.alphas_cumprod, t, 5.0, "v_prediction")[-1] < 0.01
    assert torch.equal(min_snr_weights(scheduler.alphas_cumprod, t, 0.0, "v_prediction"), torch.ones(3))
    clean, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    v = scheduler.get_velocity(clean, noise, t)
    assert step_gamma(UnetConfig(min_snr_gamma=5.0), 10**6) == 5.0  # min-SNR throughout by default
    switched = UnetConfig(min_snr_gamma=5.0, min_snr_until=4000)
    assert (step_gamma(switched, 3999), step_gamma(switched, 4000)) == (5.0, 0.0)
    a = alpha.sqrt()[:, None, None, None]
    assert torch.allclose(v, a * noise - (1 - a**2).sqrt() * clean, atol=1e-6)


def test_inpaint_loss_can_weigh_the_kept_region() -> None:
    from pipeline.lab.shapes import train_config
    from pipeline.lab.shapes.inpaint_train import kept_region_weights
    from pipeline.lab.shapes.unet_train import weighted_error

    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1  # the top half repainted
    extras = torch.cat([mask, torch.randn(2, 4, 4, 4)], dim=1)
    weights = kept_region_weights(extras, 3.0)
    assert torch.equal(weights[:, :, :2], torch.ones(2, 1, 2, 4))
    assert torch.equal(weights[:, :, 2:], torch.full((2, 1, 2, 4), 3.0))
    assert torch.equal(kept_region_weights(extras, 1.0), torch.ones(2, 1, 4, 4))
    prediction, target = torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 4)
    target[:, :, :2] = 2.0  # error 4 inside the mask, 0 outside
    assert torch.allclose(weighted_error(prediction, target, torch.ones(2, 1, 4, 4)), torch.full((2,), 2.0))
    assert torch.allclose(weighted_error(prediction, target, weights), torch.full((2,), 4 * 8 / (8 + 24)))
    with pytest.raises(UserError, match="inpaint.kept_weight must be above 0; got 0.0"):
        train_config.load_config(TINY, ["inpaint.kept_weight=0"])
    with pytest.raises(UserError, match="inpaint.edge_weight must be above 0; got -1.0"):
        train_config.load_config(TINY, ["inpaint.edge_weight=-1"])


def test_inpaint_loss_can_weigh_the_repainted_cells_at_the_edge() -> None:
    from pipeline.lab.shapes.inpaint_train import kept_region_weights

    mask = torch.zeros(1, 1, 4, 4)
    mask[:, :, :2] = 1  # the top half repainted: row 1 touches the kept row 2
    extras = torch.cat([mask, torch.randn(1, 4, 4, 4)], dim=1)
    weights = kept_region_weights(extras, 3.0, 5.0)[0, 0]
    assert torch.equal(weights[0], torch.ones(4)) and torch.equal(weights[1], torch.full((4,), 5.0))
    assert torch.equal(weights[2:], torch.full((2, 4), 3.0))
    whole = torch.cat([torch.ones(1, 1, 4, 4), torch.randn(1, 4, 4, 4)], dim=1)  # no kept cell: no edge
    assert torch.equal(kept_region_weights(whole, 3.0, 5.0), torch.ones(1, 1, 4, 4))


def test_shares_outside_zero_to_one_are_one_clear_error() -> None:
    from pipeline.lab.shapes import train_config

    for key in ("controlnet.caption_empty", "flow.teacher"):
        with pytest.raises(UserError, match=f"^{key} must be a share from 0 to 1; got 1.5.$"):
            train_config.load_config(TINY, [f"{key}=1.5"])
        assert getattr(train_config.load_config(TINY, [f"{key}=1"]), key.split(".")[0]) is not None
