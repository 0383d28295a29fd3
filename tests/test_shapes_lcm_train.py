"""The recipe's LCM-LoRA stage: its arithmetic is diffusers' (LCMScheduler's scalings and grid, the schedulers'
own noising), and the stage distils from an export, resumes, and saves a LoRA the normal `loras` path loads."""

from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, LCMScheduler, UNet2DConditionModel
from PIL import Image
from safetensors import safe_open

from pipeline.common.errors import UserError
from pipeline.run import config, generate
from pipeline.lab.shapes.lcm_train import with_lora
from pipeline.lab.shapes.lcm_math import DDIMGrid, boundary_scalings, clean_and_noise, pseudo_huber
from pipeline.lab.shapes.train import main
from pipeline.lab.shapes.train_config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "train-tiny.yaml")
BETAS = {"beta_start": 0.00085, "beta_end": 0.02, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


def test_the_scalings_are_lcm_schedulers_and_meet_the_boundary_condition() -> None:
    scheduler = LCMScheduler(**BETAS)
    timesteps = torch.tensor([0, 19, 499, 999])
    c_skip, c_out = boundary_scalings(timesteps)
    for i, t in enumerate(timesteps.tolist()):
        expected = scheduler.get_scalings_for_boundary_condition_discrete(t)
        assert torch.allclose(torch.tensor([c_skip.flatten()[i], c_out.flatten()[i]]), torch.tensor(expected))
    assert c_skip.flatten()[0] == 1 and c_out.flatten()[0] == 0


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_clean_latents_and_noise_are_recovered_from_either_prediction(kind: str) -> None:
    scheduler = DDPMScheduler(**BETAS, prediction_type=kind)
    clean, noise, t = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8), torch.tensor([5, 400, 990])
    noisy = scheduler.add_noise(clean, noise, t)
    output = noise if kind == "epsilon" else scheduler.get_velocity(clean, noise, t)
    got_clean, got_noise = clean_and_noise(output, noisy, scheduler.alphas_cumprod[t], kind)
    assert torch.allclose(got_clean, clean, atol=1e-3) and torch.allclose(got_noise, noise, atol=1e-4)


def test_the_grid_is_lcm_schedulers_and_the_ddim_step_lands_on_the_previous_point() -> None:
    scheduler = LCMScheduler(**BETAS)
    scheduler.set_timesteps(50)
    grid = DDIMGrid(scheduler.alphas_cumprod)
    assert grid.timesteps.flip(0).tolist() == scheduler.timesteps.tolist()
    clean, noise, index = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 0])
    previous = grid.ddim_step(clean, noise, index)
    expected = DDPMScheduler(**BETAS).add_noise(clean, noise, torch.tensor([int(grid.timesteps[9]), 0]))
    assert torch.allclose(previous, expected, atol=1e-6)
    assert pseudo_huber(torch.zeros(4), torch.zeros(4)) == 0 and pseudo_huber(torch.ones(4), torch.zeros(4)) > 0.99


def test_the_stage_distils_from_an_export_resumes_and_loads_as_a_lora(tmp_path: Path, monkeypatch) -> None:
    export, lora = tmp_path / "model", tmp_path / "loras" / "tiny-lcm.safetensors"
    common = [TINY, f"run_dir={tmp_path / 'run'}", f"export_dir={export}", f"lcm.export_path={lora}"]
    main(common + ["until=export"])
    main(common + ["after=controlnet", "until=lcm", "lcm.steps=1"])
    main(common + ["after=controlnet", "until=lcm", "lcm.steps=2"])  # resumes from step 1
    assert torch.load(tmp_path / "run" / "lcm" / "state.pt", weights_only=False)["step"] == 2
    with safe_open(lora, "pt") as stored:
        keys = list(stored.keys())
    # one naming throughout (PEFT's): a file mixing diffusers' old attention names in lost those layers on loading
    assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    monkeypatch.chdir(ROOT)
    cfg = config.load(ROOT / "configs" / "txt2img.yaml", [
        f"model.path={export}", f"loras=[{{path: {lora}, weight: 1.0}}]", "scheduler.name=lcm", "steps=2",
        "guidance_scale=1.0", f"output_dir={tmp_path / 'out'}", "num_images=1"])
    trained = with_lora(UNet2DConditionModel.from_pretrained(export / "unet"), load_config(TINY, []).lcm.rank)
    loaded = generate.load(generate.check(cfg)).unet
    layers = lambda unet: {n for n, m in unet.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)}  # noqa: E731
    assert layers(loaded) == layers(trained)  # every layer the stage trained, the attention projections too
    [path] = generate.run(cfg, progress=False)
    assert Image.open(path).size == (64, 64) and "tiny-lcm" in Image.open(path).text["parameters"]


def test_a_guidance_range_the_wrong_way_round_is_one_sentence() -> None:
    with pytest.raises(UserError, match="lcm.w_min and lcm.w_max must satisfy 0 <= w_min <= w_max"):
        load_config(TINY, ["lcm.w_min=5", "lcm.w_max=2"])
