"""The flow stage's optional teacher (`flow.teacher`): the exported base UNet, asked at the flow sample's
signal-to-noise ratio, gives its estimate of the clean latents and the noise; their difference is the velocity the
transformer learns, in place of (or mixed with) the one-sample target `e - x_0`. The single sample's target is right
only on average over every scene the noisy latents could have come from; the teacher's is that average itself
(the marginal velocity), so each step's gradient is less noisy. Sigmas outside the base's noise schedule keep the
data's target."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModelWithProjection


class Teacher:
    """The base UNet and text encoder, frozen, answering in the flow's terms."""

    def __init__(self, base: Path, encoder: CLIPTextModelWithProjection, pad_id: int, tokens: int):
        self.unet = UNet2DConditionModel.from_pretrained(base / "unet", dtype=torch.float32).eval()
        self.unet.requires_grad_(False)
        scheduler = DDIMScheduler.from_pretrained(base / "scheduler")
        if scheduler.config.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"a teacher predicting {scheduler.config.prediction_type} is not supported")
        self.v_prediction = scheduler.config.prediction_type == "v_prediction"
        alphas = scheduler.alphas_cumprod.double()
        self.log_snr = torch.log(alphas / (1 - alphas)).flip(0)  # rising: timestep 999 first
        self.encoder, self.pad_id, self.tokens = encoder, pad_id, tokens

    def timesteps(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (fractional) DDPM timestep whose SNR equals the flow sample's ((1 - s) / s)^2, and whether it lies
        inside the schedule."""
        log_snr = 2 * torch.log((1 - sigma.double()) / sigma.double())
        table = self.log_snr
        inside = (log_snr >= table[0]) & (log_snr <= table[-1])
        clamped = log_snr.clamp(table[0].item(), table[-1].item())
        upper = torch.searchsorted(table, clamped).clamp(1, len(table) - 1)
        lower = table[upper - 1]
        position = upper - 1 + (clamped - lower) / (table[upper] - lower)
        return (len(table) - 1 - position).float(), inside

    @torch.no_grad()
    def velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor,
                                                                                            torch.Tensor]:
        """The teacher's e - x_0 for flow samples `noisy` at sigmas `sigma` (one per sample) and the mask of the
        samples it can answer; `ids` in the flow tokenizer's window, padded here to the base's."""
        padded = torch.full((len(ids), self.tokens), self.pad_id, dtype=ids.dtype)
        padded[:, : ids.shape[1]] = ids
        states = self.encoder(padded).last_hidden_state
        timesteps, inside = self.timesteps(sigma)
        s = sigma[:, None, None, None]
        norm = torch.sqrt((1 - s) ** 2 + s**2)  # the flow sample over norm is a variance-preserving one
        signal, noise_level, scaled = (1 - s) / norm, s / norm, noisy / norm
        output = self.unet(scaled, timesteps, encoder_hidden_states=states).sample
        if self.v_prediction:
            clean, noise = signal * scaled - noise_level * output, noise_level * scaled + signal * output
        else:
            clean, noise = (scaled - noise_level * output) / signal, output
        return noise - clean, inside
