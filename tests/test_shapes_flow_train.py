"""The recipe's flow-matching stage (issue 29, item 7): the base's text encoder fills SD3's CLIP slots unchanged,
the training target is rectified flow's velocity, and the stage trains from an export, resumes, and exports a
StableDiffusion3Pipeline folder that the SD3 family and diffusers' own pipeline load and run alike."""

import json
from pathlib import Path

import torch
from diffusers import StableDiffusion3Pipeline
from PIL import Image
from safetensors.torch import load_file

from conftest import generators, max_pixel_difference
from pipeline.lab.shapes.flow_models import encode_flow, flow_transformer, projected_encoder
from pipeline.lab.shapes.flow_samples import training_sigmas
from pipeline.lab.shapes.models import build_text_encoder
from pipeline.lab.shapes.train import main
from pipeline.lab.shapes.train_config import load_config
from pipeline.run import config, generate

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "train-tiny.yaml")


def test_the_projected_encoder_is_the_base_encoder_in_both_slots() -> None:
    base = build_text_encoder(load_config(TINY).text, 30).eval()
    encoder = projected_encoder(base)
    ids = torch.randint(2, 30, (2, 77))
    with torch.no_grad():
        plain = base(ids, output_hidden_states=True)
    hidden, pooled = encode_flow(encoder, ids, 3)
    width = base.config.hidden_size
    assert hidden.shape == (2, 77 + 3, 2 * width) and not hidden[:, 77:].any()
    assert torch.equal(hidden[:, :77, :width], plain.hidden_states[-2]) and torch.equal(
        hidden[:, :77, width:], plain.hidden_states[-2])
    assert torch.allclose(pooled, torch.cat([plain.pooler_output] * 2, dim=-1), atol=1e-6)


def test_the_training_sigmas_are_logit_normal_at_the_keys_location_and_scale() -> None:
    spec = load_config(TINY).flow
    plain = training_sigmas(spec, 20000, torch.Generator().manual_seed(0))
    assert plain.min() > 0 and plain.max() < 1 and abs(plain.median().item() - 0.5) < 0.01
    spec.sigma_mean, spec.sigma_std = 0.5, 1.5
    moved = training_sigmas(spec, 20000, torch.Generator().manual_seed(0))
    logits = torch.logit(moved)  # the same normal draws, moved and widened
    assert torch.allclose(logits, 0.5 + 1.5 * torch.logit(plain), atol=1e-4)
    assert abs(moved.median().item() - torch.sigmoid(torch.tensor(0.5)).item()) < 0.01
    assert (moved > 0.9).float().mean() > (plain > 0.9).float().mean()


def test_adaln_zero_starts_every_block_as_the_identity_and_predicts_zero() -> None:
    spec = load_config(TINY).flow
    spec.zero_init, spec.layers = True, 2  # block 0 then reads and writes the text too
    torch.manual_seed(0)
    model = flow_transformer(spec, 32, 4, 16)
    inputs = {"hidden_states": torch.randn(2, 4, 16, 16), "timestep": torch.tensor([500.0, 100.0]),
              "encoder_hidden_states": torch.randn(2, 5, 64), "pooled_projections": torch.randn(2, 64)}
    assert model(**inputs, return_dict=False)[0].abs().max() == 0
    block = model.transformer_blocks[0]
    tokens, text = torch.randn(2, 64, model.inner_dim), torch.randn(2, 5, model.inner_dim)
    context, image = block(hidden_states=tokens, encoder_hidden_states=text, temb=torch.randn(2, model.inner_dim))
    assert torch.equal(image, tokens) and torch.equal(context, text)  # the gates are zero: nothing added
    spec.zero_init = False
    torch.manual_seed(0)
    assert flow_transformer(spec, 32, 4, 16)(**inputs, return_dict=False)[0].abs().max() > 0


def test_the_stage_trains_from_an_export_resumes_and_runs_as_sd3(tmp_path: Path, monkeypatch) -> None:
    export, flow = tmp_path / "model", tmp_path / "flow"
    common = [TINY, f"run_dir={tmp_path / 'run'}", f"export_dir={export}", f"flow.export_dir={flow}",
              "flow.zero_init=false"]  # random blocks, so two steps leave a transformer whose parity means something
    main(common + ["until=export"])
    main(common + ["after=xl", "until=flow", "flow.steps=1"])
    pool = tmp_path / "run" / "flow" / "pool.safetensors"
    made = pool.stat().st_mtime_ns
    main(common + ["after=xl", "until=flow", "flow.steps=2"])  # resumes from step 1, reading the pool step 1 made
    assert torch.load(tmp_path / "run" / "flow" / "state.pt", weights_only=False)["step"] == 2
    assert pool.stat().st_mtime_ns == made and len(load_file(pool)["sigma"]) == 8
    index = json.loads((flow / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and index["text_encoder_3"] == [None, None]
    weights = "vae/diffusion_pytorch_model.safetensors"
    assert (flow / weights).is_symlink() and (flow / weights).resolve() == (export / weights).resolve()
    assert (flow / "tokenizer_2").resolve() == (flow / "tokenizer").resolve()
    assert json.loads((flow / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"] == 20
    assert json.loads((flow / "vae" / "config.json").read_text())["shift_factor"] == 0.0
    monkeypatch.chdir(ROOT)
    settings = [f"model.path={flow}", "steps=3", "num_images=1", f"output_dir={tmp_path / 'out'}", "seed=5",
                "scheduler.name=Euler", "max_sequence_length=1", "model.dtype=float32"]
    cfg = config.load(ROOT / "configs" / "txt2img.yaml", settings)
    [path] = generate.run(cfg, progress=False)
    pipe = StableDiffusion3Pipeline.from_pretrained(flow, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(cfg.prompt, negative_prompt=cfg.negative_prompt, num_inference_steps=3,
                     guidance_scale=cfg.guidance_scale, max_sequence_length=1, generator=generators(5, 1),
                     output_type="np").images
    assert max_pixel_difference([Image.open(path).convert("RGB")], reference) <= 1
