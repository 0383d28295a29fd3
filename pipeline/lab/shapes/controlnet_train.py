"""Stage 7: the ControlNet. A ControlNet made from the exported UNet (its encoder copied, zero convolutions out)
learns to read the scenes' layout maps (pipeline/lab/shapes/layout.py) with the UNet and text encoder frozen,
resumably; it is exported as a diffusers ControlNetModel folder that `controlnets: [{path: ...}]` loads."""

import dataclasses
import time
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.export import export_scaling, folder_size, save_weights
from pipeline.lab.shapes.latent_cache import training_scenes_seed
from pipeline.lab.shapes.layout import layout_batch
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.unet_train import diffusion_loss, step_gamma
from pipeline.lab.shapes.world import Scene, make_scenes


class ControlledUNet(torch.nn.Module):
    """The frozen UNet with a ControlNet's residuals added, called as a UNet with one more input (`control`)."""

    def __init__(self, unet: UNet2DConditionModel, controlnet: ControlNetModel) -> None:
        super().__init__()
        self.unet, self.controlnet = unet, controlnet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                control: torch.Tensor):
        """The UNet's output (with `.sample`) under the control maps (N, 3, H, W) in [0, 1]."""
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                    controlnet_cond=control, return_dict=False)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid)


def control_inputs(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """The training step's model inputs beyond the UNet's: the picked scenes' layout maps."""
    return {"control": torch.from_numpy(layout_batch(scenes))}


def build_controlnet(unet: UNet2DConditionModel, channels: list[int]) -> ControlNetModel:
    """A ControlNet from the UNet: its encoder's weights, and a control-image encoder that halves the map's side
    once per entry after the first (so its grid is the latents': len(channels) - 1 halvings = the VAE's factor)."""
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(channels))


def train_controlnet(config: TrainConfig, run_dir: Path, latents: torch.Tensor) -> ControlNetModel:
    """Train (or resume) the ControlNet on the exported base model; export it to `controlnet.export_dir`."""
    spec, base, stage_dir = config.controlnet, Path(config.export_dir), run_dir / "controlnet"
    started = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32).requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder", dtype=torch.float32).requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    scaling = export_scaling(base)
    torch.manual_seed(config.seed)
    controlnet = build_controlnet(unet, spec.conditioning_channels)
    optimiser = torch.optim.AdamW(controlnet.parameters(), lr=spec.lr, weight_decay=0.01)
    step, elapsed = 0, 0.0
    state = load_state(stage_dir / "state.pt")
    if state is not None:
        controlnet.load_state_dict(state["controlnet"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    started -= elapsed
    scenes = make_scenes(training_scenes_seed(config), len(latents), config.two_shape_share, config.variation)
    gamma = step_gamma(config.unet, config.unet.steps)  # the loss the base ended with
    recipe = dataclasses.replace(config, unet=dataclasses.replace(
        config.unet, batch_size=spec.batch_size, min_snr_gamma=gamma, caption_empty=spec.caption_empty))
    noise_scheduler = DDPMScheduler.from_config(config.scheduler)
    model = ControlledUNet(unet, controlnet)
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="controlnet", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, spec.warmup_steps)
        loss = diffusion_loss((model, text_encoder), tokenizer, noise_scheduler, latents * scaling, scenes, recipe,
                              step, model_inputs=control_inputs)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimiser.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % spec.checkpoint_every == 0 or step + 1 == spec.steps:
            save_state(stage_dir / "state.pt", {"controlnet": controlnet.state_dict(), "step": step + 1,
                                                "optimiser": optimiser.state_dict(),
                                                "elapsed": time.perf_counter() - started})
    save_weights(controlnet, Path(spec.export_dir), DTYPES[config.export_dtype])
    seconds = time.perf_counter() - started
    update_summary(run_dir, "seconds", seconds, stage="controlnet")
    update_summary(run_dir, "bytes", folder_size(Path(spec.export_dir)), stage="controlnet")
    print(f"controlnet: {spec.steps} steps in {seconds / 60:.1f} min -> {spec.export_dir}")
    return controlnet
