"""A run's conditioning is finite or the run stops before the UNet: emphasis never divides by a (nearly) zero mean,
and text embeddings that are NaN or inf (the encoder's weights, a LoRA or an embedding on it, emphasis) stop the run
with exit 3 and one sentence naming the prompt encoding, nothing written."""

import copy
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.cli import main as cli
from pipeline.lab.fixtures.addon_files import make_lora, make_word_embedding
from pipeline.text.chunk_embeddings import emphasise, final_layer_norm
from pipeline.text.encoding import encode_texts

CPU = torch.device("cpu")


def chunk(*values: float) -> torch.Tensor:
    """A chunk of one feature per position: shape (1, positions, 1)."""
    return torch.tensor(values, dtype=torch.float32)[None, :, None]


def test_a_well_defined_mean_is_restored_as_a1111_does():
    z, weights = chunk(1.0, 2.0, 3.0), [1.5, 1.0, 1.0]
    scaled = z * torch.tensor(weights)[None, :, None]
    torch.testing.assert_close(emphasise(z, weights), scaled * (z.mean() / scaled.mean()))


@pytest.mark.parametrize("z,weights,divisor", [
    (chunk(2.0, -1.0, 0.0), [0.5, 1.0, 1.0], 0.0),  # the emphasised mean is exactly 0: A1111 gives inf
    (chunk(2.0, -1.0, 3e-30), [0.5, 1.0, 1.0], 1e-30),  # ... 1e-30: A1111 multiplies by 3e29
    (chunk(1.0, -1.0), [2.0, 1.0], 0.5),  # the chunk's own mean is 0: A1111 zeroes every value
])
def test_a_near_zero_mean_keeps_the_scaled_values(z, weights, divisor):
    scaled = z * torch.tensor(weights)[None, :, None]
    assert scaled.mean().item() == pytest.approx(divisor, abs=1e-36)
    out = emphasise(z, weights)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, scaled, rtol=0, atol=0)  # A1111's "No norm"


def test_a_chunk_of_tiny_values_is_still_normalised():
    """Near zero means near zero for the values' size: a chunk whose every value is 1e-30 is well-defined."""
    z, weights = torch.full((1, 3, 2), 1e-30), [2.0, 1.0, 1.0]
    scaled = z * torch.tensor(weights)[None, :, None]
    out = emphasise(z, weights)
    torch.testing.assert_close(out, scaled * (z.mean() / scaled.mean()), rtol=1e-6, atol=0)
    assert out.mean().item() == pytest.approx(1e-30, rel=1e-5)


@pytest.fixture(scope="module")
def encoder(tiny_model):
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    return tokenizer, CLIPTextModel.from_pretrained(tiny_model / "text_encoder").eval()


def plain_and_weighted(tokenizer, text_encoder):
    cpu = torch.device("cpu")
    plain = encode_texts(tokenizer, text_encoder, ["ab cd"], cpu, "none")[0]
    weighted = encode_texts(tokenizer, text_encoder, ["ab (cd:1.5)"], cpu, "a1111")[0]
    weights = torch.ones(77)
    weights[3:5] = 1.5  # start token, a, b, then c and d
    return plain, weighted, plain * weights[None, :, None]


def test_the_tiny_encoders_zero_mean_chunks_are_scaled_without_restoring(encoder):
    """The tiny random encoder's final layer norm has no bias, so every chunk's mean is rounding noise (~1e-8): the
    quotient A1111 takes then depends on the CPU's last bits (inf on an AVX2-only EPYC); the rule makes it exact."""
    tokenizer, text_encoder = encoder
    plain, weighted, scaled = plain_and_weighted(tokenizer, text_encoder)
    assert abs(plain.mean().item()) < 1e-6 * plain.abs().mean().item()
    torch.testing.assert_close(weighted, scaled, rtol=1e-6, atol=1e-6)


def test_an_encoder_with_a_real_mean_gets_a1111s_arithmetic(encoder):
    """With a final layer norm bias (real CLIPs have one) the mean is well-defined and A1111's quotient applies."""
    tokenizer, text_encoder = encoder
    shifted = copy.deepcopy(text_encoder)
    with torch.no_grad():
        final_layer_norm(shifted).bias.fill_(0.5)
    plain, weighted, scaled = plain_and_weighted(tokenizer, shifted)
    torch.testing.assert_close(weighted, scaled * (plain.mean() / scaled.mean()), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(weighted, scaled, atol=1e-3)


def with_nan(source: Path, folder: Path, file: str, key: str) -> Path:
    """A copy of a model folder with one NaN in one tensor of one file."""
    shutil.copytree(source, folder)
    tensors = load_file(folder / file)
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, folder / file, metadata={"format": "pt"})
    return folder


def run_cli(tmp_path, *overrides):
    """scripts/generate.py at the defaults (model.dtype auto), three steps, into tmp_path/out."""
    (tmp_path / "empty.yaml").write_text("{}\n")
    return cli.run_cli(str(tmp_path / "empty.yaml"), [f"output_dir={tmp_path / 'out'}", "steps=3", *overrides])


def stops_at_the_text(tmp_path, capsys, *overrides) -> str:
    """Run, check exit 3 with one error sentence and nothing written, and return the sentence."""
    code = run_cli(tmp_path, *overrides)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith(("error", "Traceback"))]
    assert code == cli.EXIT_NON_FINITE == 3, captured.err
    assert len(errors) == 1 and errors[0].endswith("."), captured.err
    assert captured.out.strip() == ""
    assert not (tmp_path / "out").exists(), "a file or an empty output folder was left"
    return errors[0]


def test_a_nan_text_encoder_weight_is_named_not_the_unet(tiny_model, tmp_path, capsys):
    model = with_nan(tiny_model, tmp_path / "model", "text_encoder/model.safetensors",
                     "encoder.layers.0.self_attn.q_proj.weight")
    error = stops_at_the_text(tmp_path, capsys, f"model.path={model}")
    assert error.startswith("error: the prompt's text embeddings hold NaN, so the run stops before the UNet: "
                            "the text encoder's weights hold NaN or inf (first: "), error


def test_a_nan_lora_on_the_text_encoder_is_named(tiny_model, tmp_path, capsys):
    lora = make_lora(tiny_model, tmp_path / "loras" / "bad.safetensors", seed=4)
    tensors = load_file(lora)
    key = next(k for k in sorted(tensors) if k.startswith("text_encoder.") and "lora_A" in k)
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, lora)
    error = stops_at_the_text(tmp_path, capsys, f"model.path={tiny_model}", f"loras=[{{path: '{lora}'}}]")
    assert "hold NaN, so the run stops before the UNet: a LoRA applied to the text encoder holds NaN" in error, error


def test_a_nan_embedding_is_named(tiny_model, tmp_path, capsys):
    embedding = make_word_embedding(tiny_model, "red", tmp_path / "embeddings" / "glowing.safetensors")
    save_file({"emb_params": load_file(embedding)["emb_params"] * float("nan")}, embedding)
    error = stops_at_the_text(tmp_path, capsys, f"model.path={tiny_model}", "prompt=a glowing circle",
                              f"embeddings_dir={embedding.parent}")
    assert "so the run stops before the UNet: a textual-inversion embedding's vectors hold NaN or inf" in error, error


def test_a_negative_prompt_that_overflows_by_emphasis_is_named(tiny_model, tmp_path, capsys):
    huge = "1" + "0" * 39  # 1e39: past float32's range
    error = stops_at_the_text(tmp_path, capsys, f"model.path={tiny_model}", "model.dtype=float32",
                              f"negative_prompt=a (blue:{huge}) square")
    assert error.startswith("error: the negative_prompt's text embeddings hold "), error
    assert "so the run stops before the UNet: the prompt's emphasis weights made them overflow in float32" in error
