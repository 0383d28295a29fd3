"""Stage 8: the LCM-LoRA. A LoRA on the exported base's UNet learns, by latent consistency distillation (Luo et
al., 2023; lcm_math.py), to map any point of the teacher's guided trajectory to its end, so that LCMScheduler draws
in 1 to 8 steps without classifier-free guidance; the teacher is the frozen base, the text encoder is frozen, the
LoRA is saved in diffusers' format, which the `loras` key and a prompt's `<lora:tiny-shapes-lcm>` load."""

import dataclasses
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.models.precision import DTYPES
from pipeline.lab.shapes.checkpoint import cosine_lr, load_state, save_state, update_summary
from pipeline.lab.shapes.export import export_scaling
from pipeline.lab.shapes.latent_cache import training_scenes_seed
from pipeline.lab.shapes.lcm_math import DDIMGrid, boundary_scalings, clean_and_noise, pseudo_huber
from pipeline.lab.shapes.train_config import TrainConfig
from pipeline.lab.shapes.unet_train import training_batch
from pipeline.lab.shapes.world import make_scenes

# the LCM-LoRA example's target modules: attention, feed-forward, resnet and resampling convolutions, time projection
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]


def with_lora(unet: UNet2DConditionModel, rank: int) -> UNet2DConditionModel:
    """The UNet with a trainable LoRA (alpha = rank, Gaussian A, zero B: the unchanged UNet at first), all else
    frozen."""
    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS, init_lora_weights="gaussian")
    return inject_adapter_in_model(config, unet)


class Distiller:
    """One step's consistency-distillation loss: student and target are the LoRA'd UNet, the teacher the base."""

    def __init__(self, student: UNet2DConditionModel, teacher: UNet2DConditionModel, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, noise_scheduler: DDPMScheduler, guidance: tuple[float, float]) -> None:
        self.student, self.teacher, self.text_encoder = student, teacher, text_encoder
        self.alphas = noise_scheduler.alphas_cumprod
        self.kind = noise_scheduler.config.prediction_type
        self.noise_scheduler, self.grid, self.guidance = noise_scheduler, DDIMGrid(self.alphas), guidance
        empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
        with torch.no_grad():
            self.empty = text_encoder(empty.input_ids)[0]

    def consistency(self, unet: UNet2DConditionModel, x: torch.Tensor, t: torch.Tensor,
                    text: torch.Tensor) -> torch.Tensor:
        """f(x, t) = c_skip x + c_out x0: the model's estimate of the trajectory's end."""
        c_skip, c_out = boundary_scalings(t)
        clean, _ = clean_and_noise(unet(x, t, encoder_hidden_states=text).sample, x, self.alphas[t], self.kind)
        return c_skip * x + c_out * clean

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, t: torch.Tensor, index: torch.Tensor, text: torch.Tensor,
                     w: torch.Tensor) -> torch.Tensor:
        """The teacher's guided DDIM step back one grid point: x0 and noise = cond + w (cond - uncond)."""
        both = self.teacher(torch.cat([x, x]), torch.cat([t, t]),
                            encoder_hidden_states=torch.cat([text, self.empty.expand_as(text)])).sample
        cond, uncond = [clean_and_noise(half, x, self.alphas[t], self.kind) for half in both.chunk(2)]
        clean, noise = [c + w * (c - u) for c, u in zip(cond, uncond)]
        return self.grid.ddim_step(clean, noise, index)

    def loss(self, clean: torch.Tensor, ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise clean latents to a grid point, step the teacher one point back, and pull the student's estimate
        there towards its own (gradient-free) estimate from the teacher's point."""
        count = len(clean)
        index = torch.randint(0, len(self.grid.timesteps), (count,), generator=generator)
        start = self.grid.timesteps[index]
        end = (start - self.grid.skip).clamp(min=0)
        low, high = self.guidance
        w = (low + (high - low) * torch.rand(count, generator=generator)).view(-1, 1, 1, 1)
        noisy = self.noise_scheduler.add_noise(clean, torch.randn(clean.shape, generator=generator), start)
        with torch.no_grad():
            text = self.text_encoder(ids)[0]
        prediction = self.consistency(self.student, noisy, start, text)
        previous = self.teacher_step(noisy, start, index, text, w)
        with torch.no_grad():
            target = self.consistency(self.student, previous, end, text)
        return pseudo_huber(prediction, target)


def save_lora(unet: UNet2DConditionModel, path: Path, dtype: torch.dtype) -> None:
    """The UNet's LoRA in PEFT's names under `unet.`, one .safetensors file, which diffusers' loader reads as it is.
    Not through diffusers' convert_state_dict_to_diffusers: that renames only the attention projections (to_q's
    lora_A to lora.down) and leaves the rest in PEFT's names, and diffusers' loader, seeing PEFT names first, then
    skips the renamed ones without a word (the attention layers of the LoRA lost)."""
    layers = {k: v.to(dtype) for k, v in get_peft_model_state_dict(unet).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name,
                                              safe_serialization=True)


def train_lcm(config: TrainConfig, run_dir: Path, latents: torch.Tensor) -> Path:
    """Distil (or resume distilling) the LCM-LoRA from the exported base; save it to `lcm.export_path`."""
    spec, base, stage_dir = config.lcm, Path(config.export_dir), run_dir / "lcm"
    started = time.perf_counter()
    teacher = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32).requires_grad_(False)
    student = with_lora(UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32), spec.rank)
    text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder", dtype=torch.float32).requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    scaling = export_scaling(base)
    noise_scheduler = DDPMScheduler.from_config(config.scheduler)
    torch.manual_seed(config.seed)
    trained = [p for p in student.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=spec.lr, weight_decay=0.0)  # the example runs: adam_weight_decay 0
    step, elapsed = 0, 0.0
    state = load_state(stage_dir / "state.pt")
    if state is not None:
        set_peft_model_state_dict(student, state["lora"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = state["step"], state["elapsed"]
    started -= elapsed
    scenes = make_scenes(training_scenes_seed(config), len(latents), config.two_shape_share, config.variation)
    batch = dataclasses.replace(config.unet, batch_size=spec.batch_size, caption_empty=0.0, mislabel=0.0)
    distiller = Distiller(student, teacher, text_encoder, tokenizer, noise_scheduler, (spec.w_min, spec.w_max))
    bar = tqdm(range(step, spec.steps), initial=step, total=spec.steps, desc="lcm", mininterval=5)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = spec.lr * cosine_lr(step, spec.steps, spec.warmup_steps)
        picks, ids = training_batch(tokenizer, scenes, batch, config.seed, step)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        loss = distiller.loss(latents[torch.from_numpy(picks)] * scaling, ids, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
        bar.set_postfix(loss=f"{loss.item():.5f}", refresh=False)
        if (step + 1) % spec.checkpoint_every == 0 or step + 1 == spec.steps:
            save_state(stage_dir / "state.pt", {"lora": get_peft_model_state_dict(student), "step": step + 1,
                                                "optimiser": optimiser.state_dict(),
                                                "elapsed": time.perf_counter() - started})
    path = Path(spec.export_path)
    save_lora(student, path, DTYPES[config.export_dtype])
    seconds = time.perf_counter() - started
    update_summary(run_dir, "seconds", seconds, stage="lcm")
    update_summary(run_dir, "bytes", path.stat().st_size, stage="lcm")
    print(f"lcm: {spec.steps} steps in {seconds / 60:.1f} min -> {path}")
    return path
