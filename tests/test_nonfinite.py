"""Nothing non-finite is saved as an image: NaN or inf latents or decodes stop the run with exit code 3 and one
sentence naming the step and the likely cause; a comparison cell that goes NaN is an error cell; a flat or 16-bit
depth map gives a finite image; every float key's NaN, inf and overflowing values are refused before weights load."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from bad_inputs import Case
from bad_inputs.nonfinite import CASES
from conftest import make_config
from pipeline.cli import main as cli
from pipeline.tools.compare import runner as compare, config as compare_config
from pipeline.run import generate
from pipeline.engine.nonfinite import NonFiniteError, step_failure
from pipeline.lab.fixtures.tiny_model import build_tiny_model
from pipeline.cli.tools import run_tool
from pipeline.variants.depth2img import normalised_depth
from test_reliability_table import run_tool_in_process, task_file

NAN = float("nan")


def poisoned(source: Path, folder: Path, part: str, weight: str) -> Path:
    """A copy of a model folder with one NaN in one weight of one part."""
    shutil.copytree(source, folder)
    file = folder / part / "diffusion_pytorch_model.safetensors"
    tensors = load_file(file)
    tensors[weight].view(-1)[0] = NAN
    save_file(tensors, file, metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def nan_unet(tiny_model, tmp_path_factory):
    return poisoned(tiny_model, tmp_path_factory.mktemp("nan-unet") / "model", "unet", "conv_in.weight")


@pytest.fixture(scope="module")
def nan_vae(tiny_model, tmp_path_factory):
    return poisoned(tiny_model, tmp_path_factory.mktemp("nan-vae") / "model", "vae", "decoder.conv_in.weight")


def run_cli(tmp_path, *overrides):
    """scripts/generate.py's behaviour at the defaults (model.dtype auto), writing into tmp_path/out."""
    (tmp_path / "empty.yaml").write_text("{}\n")
    return cli.run_cli(str(tmp_path / "empty.yaml"), [f"output_dir={tmp_path / 'out'}", "steps=3", *overrides])


def error_line(capsys) -> tuple[str, list[str]]:
    """The one 'error:' line on stderr (progress bars and notes aside) and the stdout lines."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith(("error", "warning", "Traceback"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith("."), captured.err
    return lines[0], [line for line in captured.out.splitlines() if line]


def test_nan_unet_weight_stops_the_run_naming_the_step_and_writes_nothing(nan_unet, tmp_path, capsys):
    code = run_cli(tmp_path, f"model.path={nan_unet}", "num_images=2")
    error, written = error_line(capsys)
    assert code == cli.EXIT_NON_FINITE == 3
    assert error.startswith("error: the latents became NaN at step 1 of 3 (scheduler DDIMScheduler): "
                            "the UNet returned NaN on finite input: its weights hold NaN or inf"), error
    assert written == [] and not (tmp_path / "out").exists(), "a file or an empty output folder was left"


def test_nan_vae_weight_stops_the_run_at_the_decode(nan_vae, tmp_path, capsys):
    code = run_cli(tmp_path, f"model.path={nan_vae}")
    error, _ = error_line(capsys)
    assert code == 3 and "the VAE decode gave NaN from finite latents: the VAE's weights hold NaN" in error
    assert not (tmp_path / "out").exists()
    roundtrip = Case("NaN VAE", [], "", tool="roundtrip")
    code = run_tool_in_process(roundtrip, task_file(tmp_path, nan_vae, "roundtrip"), [])
    error, _ = error_line(capsys)
    assert code == 3 and "the VAE decode gave NaN" in error
    assert not (tmp_path / "out").exists(), "the latent tool made a run folder"


def test_batches_before_the_failing_one_are_kept_and_printed(tiny_model, tmp_path, capsys, monkeypatch):
    """The UNet goes NaN in the second batch: the first batch's image stays and its path is printed."""
    real_load = generate.load

    def load_then_fail_later(plan):
        components = real_load(plan)
        calls = []

        def nan_from_batch_two(module, args, output):
            calls.append(1)
            return (output[0] * NAN,) if len(calls) > 3 else output

        components.unet.register_forward_hook(nan_from_batch_two)
        return components

    monkeypatch.setattr(generate, "load", load_then_fail_later)
    code = run_cli(tmp_path, f"model.path={tiny_model}", "num_images=3", "batch_size=1", "seed=5")
    error, written = error_line(capsys)
    assert code == 3 and "at step 1 of 3" in error and "the UNet returned NaN on finite input" in error
    assert [Path(p).name for p in written] == ["00001-5.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00001-5.png", "00001-5.yaml"]


@pytest.mark.parametrize("stage,expected", [
    ("start", "the starting latents were not finite: the scheduler's noise scale (init_noise_sigma 1"),
    ("model_in", "the UNet's input was not finite: the task's extra channels"),
    ("context", "the text embeddings the UNet was given hold inf: the prompt encoding made them"),
    ("prediction", "the UNet returned inf on finite input: its weights hold NaN or inf, or it overflowed in float16"),
    ("guided", "classifier-free guidance overflowed: guidance_scale 90 is too large for float16"),
    ("latents", "the scheduler's step (or the task's blending) made it from a finite prediction"),
])
def test_the_likely_cause_is_the_first_stage_that_was_not_finite(stage, expected):
    tensors = {name: torch.zeros(2, 4, 8, 8, dtype=torch.float16)
               for name in ("start", "model_in", "context", "prediction", "guided", "latents")}
    order = list(tensors)
    for name in order[order.index(stage):]:
        tensors[name].view(-1)[3] = float("inf")
    scheduler = type("DDIMScheduler", (), {"init_noise_sigma": 1.0})()
    start, model_in, context, *rest = tensors.values()
    sentence = step_failure(6, 25, scheduler, start, model_in, {"hidden_states": context}, *rest, guidance_scale=90.0)
    assert sentence.startswith("the latents became inf at step 7 of 25 (scheduler DDIMScheduler): ")
    assert expected in sentence and sentence.endswith(".")


def test_a_non_finite_conditioning_entry_is_named():
    finite, bad = torch.zeros(2, 4, 8, 8), torch.full((2, 6), float("nan"))
    scheduler = type("DDIMScheduler", (), {"init_noise_sigma": 1.0})()
    context = {"hidden_states": torch.zeros(2, 77, 8), "text_embeds": bad}
    sentence = step_failure(0, 5, scheduler, finite, finite, context, finite, finite, bad, guidance_scale=5.0)
    assert "the conditioning the UNet was given holds NaN in text_embeds" in sentence


def test_a_comparison_cell_that_goes_nan_is_an_error_cell(tiny_model, tmp_path):
    """A scheduler whose betas reach 1 divides by sqrt(alpha_bar) = 0: today's black tile becomes an error cell."""
    diverging = "{name: ddim, options: {beta_schedule: linear, beta_start: 0.5, beta_end: 1.0, clip_sample: false}}"
    cfg = compare_config.load(None, [f"model.path={tiny_model}", f"output_dir={tmp_path}", "model.device=cpu",
                                     "prompt=a red circle", "compare.steps=[2]", f"compare.schedulers=[ddim, {diverging}]"])
    result = compare.run_comparison(cfg, progress=False)
    ok, bad = result.cells
    assert ok.status == "ok" and ok.image.is_file()
    assert bad.status == "error" and bad.image is None
    assert bad.error.startswith("NonFiniteError: the latents became inf at step 1 of 2 (scheduler DDIMScheduler): "
                                "the scheduler's step"), bad.error
    assert sorted(p.suffix for p in result.folder.glob("0*")) == [".png", ".yaml"], "the NaN cell wrote an image"
    assert '"status": "error"' in result.files["json"].read_text()


def test_a_comparison_whose_every_cell_goes_nan_finishes_with_error_cells(nan_unet, tmp_path, capsys):
    """Every cell failing is still a finished comparison (exit 0) with error cells, never black tiles."""
    overrides = [f"model.path={nan_unet}", f"output_dir={tmp_path}", "model.device=cpu", "compare.steps=[1]"]
    code = run_tool(lambda: compare.summary(compare.run_comparison(compare_config.load(None, overrides), False)))
    out = capsys.readouterr().out
    assert code == 0 and " error  NonFiniteError: the latents became NaN at step 1 of 1" in out
    assert not list(tmp_path.glob("*/0*.png"))


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny5") / "model", unet_in_channels=5)


def depth_picture(tmp_path: Path, array: np.ndarray) -> Path:
    path = tmp_path / f"depth-{array.dtype}.png"
    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("depth", [np.full((16, 16), 128, np.uint8), np.full((16, 16), 4000, np.uint16),
                                   (np.arange(256, dtype=np.uint16).reshape(16, 16) * 200 + 10000)],
                         ids=["flat 8-bit", "flat 16-bit", "16-bit gradient"])
def test_flat_and_16_bit_depth_maps_give_a_finite_image(depth, depth_model, tmp_path, capsys):
    picture = tmp_path / "image.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(picture)
    code = run_cli(tmp_path, f"model.path={depth_model}", "task=depth2img", f"image={picture}",
                   f"depth_map={depth_picture(tmp_path, depth)}")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    image = np.asarray(Image.open(captured.out.split()[0]))
    assert image.std() > 0, "a constant (black) picture"


def test_normalised_depth_maps_flat_to_zero_and_stretches_the_rest():
    flat = normalised_depth(torch.full((2, 16, 16), 0.7), (8, 8))  # bicubic of a constant rounds: still flat
    assert torch.equal(flat, torch.zeros(2, 1, 8, 8))
    assert torch.equal(normalised_depth(torch.zeros(1, 16, 16), (8, 8)), torch.zeros(1, 1, 8, 8))
    sixteen_bit = torch.linspace(0, 65535, 256).reshape(1, 16, 16)
    one_step = torch.full((1, 16, 16), 100 / 255)
    one_step[0, :, 8:] = 101 / 255  # one 8-bit grey level apart: a real (shallow) depth, not flat
    for depth in (sixteen_bit, one_step):
        stretched = normalised_depth(depth, (8, 8))
        assert torch.isfinite(stretched).all() and (stretched.amin(), stretched.amax()) == (-1, 1)


def test_loop_check_raises_before_any_save(tiny_model, tmp_path):
    """generate_images itself raises NonFiniteError, so no caller can save the batch."""
    components = generate.load(generate.check(make_config(tiny_model, tmp_path, steps=2)))
    with torch.no_grad():
        components.unet.conv_in.bias.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="at step 1 of 2"):
        generate.generate_images(components, make_config(tiny_model, tmp_path, steps=2), [0], 16, 16, progress=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_float_case_is_refused_before_weights_load(case, tmp_path, tiny_model, capsys, no_weights):
    config = task_file(tmp_path, tiny_model, case.tool) if case.config == "task" else case.config(tmp_path, tiny_model)
    overrides = case.overrides(tmp_path, tiny_model) if callable(case.overrides) else case.overrides
    assert run_tool_in_process(case, config, overrides) == 2
    assert case.expected in capsys.readouterr().err
