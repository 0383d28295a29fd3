"""The flow stage's teacher (pipeline/lab/shapes/flow_teacher.py): the base UNet asked at the flow sample's SNR, its
answer turned into a velocity that is its own clean and noise estimates."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.lab.shapes.flow_models import projected_encoder
from pipeline.lab.shapes.flow_teacher import Teacher


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_velocity_is_the_teachers_own_estimate_at_the_samples_snr(tiny_model, tmp_path: Path, prediction) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    settings = base / "scheduler" / "scheduler_config.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "prediction_type": prediction}))
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    encoder = projected_encoder(CLIPTextModel.from_pretrained(base / "text_encoder"))
    teacher = Teacher(base, encoder, tokenizer.pad_token_id, tokenizer.model_max_length)
    sigma = torch.tensor([0.05, 0.3, 0.6, 0.9])  # inside SD 1.x's schedule (to about 0.93)
    timesteps, inside = teacher.timesteps(sigma)
    alphas = DDIMScheduler.from_pretrained(base / "scheduler").alphas_cumprod.double()
    snr = alphas / (1 - alphas)
    wanted = ((1 - sigma.double()) / sigma.double()) ** 2
    assert inside.all()
    assert (snr[timesteps.floor().long()] >= wanted).all() and (snr[timesteps.ceil().long()] <= wanted).all()
    prompts = ["a red circle", "", "a blue square on the left", "a cat"]
    assert max(len(tokenizer(p).input_ids) for p in prompts) < 24  # the short window cuts only padding
    short = tokenizer(prompts, padding="max_length", max_length=24, return_tensors="pt").input_ids
    torch.manual_seed(0)
    noisy = torch.randn(4, 4, 8, 8)
    velocity, _ = teacher.velocity(noisy, sigma, short)
    s = sigma[:, None, None, None]
    clean, noise = noisy - s * velocity, noisy + (1 - s) * velocity  # the flow sample's own decomposition
    norm = torch.sqrt((1 - s) ** 2 + s**2)
    full = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    with torch.no_grad():
        output = unet(noisy / norm, timesteps, encoder_hidden_states=encoder(full.input_ids).last_hidden_state).sample
    expected = noise if prediction == "epsilon" else ((1 - s) * noise - s * clean) / norm
    assert torch.allclose(output, expected, atol=1e-4)
    far = teacher.timesteps(torch.tensor([1e-4, 0.9999]))
    assert not far[1].any() and far[0].tolist() == pytest.approx([0.0, 999.0], abs=1e-3)
