"""The arithmetic of latent consistency distillation (Luo et al., 2023, "Latent Consistency Models" and
"LCM-LoRA"), as diffusers' examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py states it and as
diffusers' LCMScheduler undoes it at inference: the boundary-condition scalings, the clean latents and noise a model
output stands for, and the teacher's DDIM step over the 50-step skipping grid LCMScheduler's
`original_inference_steps` names."""

import torch

SIGMA_DATA = 0.5  # LCMScheduler.get_scalings_for_boundary_condition_discrete's constant
TIMESTEP_SCALING = 10.0  # LCMScheduler's config default `timestep_scaling`
DDIM_STEPS = 50  # LCMScheduler's `original_inference_steps` default: the grid the teacher's skipping step walks


def boundary_scalings(timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip and c_out for the consistency function f(x, t) = c_skip(t) x + c_out(t) x0(x, t), shaped to
    broadcast over (B, C, H, W): c_skip = 1 and c_out = 0 at t = 0, as the boundary condition asks."""
    scaled = timesteps.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


def clean_and_noise(output: torch.Tensor, sample: torch.Tensor, alpha_cumprod: torch.Tensor,
                    prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean latents x0 and the noise a model output stands for at a step with cumulative alpha a
    ((B,) tensor): epsilon or v (v = sqrt(a) eps - sqrt(1 - a) x0)."""
    a = alpha_cumprod.view(-1, 1, 1, 1)
    root, rest = a.sqrt(), (1 - a).sqrt()
    if prediction_type == "epsilon":
        return (sample - rest * output) / root, output
    if prediction_type == "v_prediction":
        return root * sample - rest * output, root * output + rest * sample
    raise ValueError(f"prediction_type must be epsilon or v_prediction; got '{prediction_type}'")


class DDIMGrid:
    """The skipping grid: 50 timesteps 19, 39, ..., 999 of 1000 (each step of the teacher jumps 20 timesteps)."""

    def __init__(self, alphas_cumprod: torch.Tensor, steps: int = DDIM_STEPS) -> None:
        self.skip = len(alphas_cumprod) // steps
        self.timesteps = torch.arange(1, steps + 1) * self.skip - 1
        self.alphas = alphas_cumprod[self.timesteps]
        self.alphas_previous = torch.cat([alphas_cumprod[:1], alphas_cumprod[self.timesteps[:-1]]])

    def ddim_step(self, clean: torch.Tensor, noise: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The deterministic DDIM step from grid point `index` to the one before it, given x0 and the noise."""
        previous = self.alphas_previous[index].view(-1, 1, 1, 1)
        return previous.sqrt() * clean + (1 - previous).sqrt() * noise


def pseudo_huber(prediction: torch.Tensor, target: torch.Tensor, c: float = 0.001) -> torch.Tensor:
    """The example's default loss: mean of sqrt((x - y)^2 + c^2) - c (Song and Dhariwal, 2023)."""
    return (torch.sqrt((prediction.float() - target.float()) ** 2 + c**2) - c).mean()
