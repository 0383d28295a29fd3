"""The README's add-on examples on the shipped model: files from scripts/make_addons.py's functions work as said."""

from pathlib import Path

from PIL import Image

from conftest import max_pixel_difference
from pipeline.run import config, generate
from pipeline.lab.fixtures.addon_files import make_lora, make_word_embedding

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "tiny-shapes"


def run(tmp_path, name, prompt, **keys):
    overrides = [f"output_dir={tmp_path / name}", f"model.path={MODEL}", "num_images=1", "batch_size=1",
                 "steps=10", f"prompt={prompt}"] + [f"{k}={v}" for k, v in keys.items()]
    return [Image.open(p) for p in generate.run(config.load(ROOT / "configs" / "txt2img.yaml", overrides),
                                                  progress=False)]


def test_a_word_embedding_means_its_words(tmp_path):
    make_word_embedding(MODEL, "red circle", tmp_path / "emb" / "redcircle.safetensors")
    words = run(tmp_path, "words", "a large red circle in the centre, blue background")
    token = run(tmp_path, "token", "a large redcircle in the centre, blue background", embeddings_dir=tmp_path / "emb")
    assert max_pixel_difference(token, words) == 0


def test_the_example_lora_changes_the_image_and_weight_zero_does_not(tmp_path):
    make_lora(MODEL, tmp_path / "loras" / "noise.safetensors", seed=0, kind="kohya", scale=0.3)
    prompt = "a large red circle in the centre, blue background"
    base = run(tmp_path, "base", prompt)
    half = run(tmp_path, "half", prompt + " <lora:noise:0.5>", lora_dir=tmp_path / "loras")
    zero = run(tmp_path, "zero", prompt + " <lora:noise:0>", lora_dir=tmp_path / "loras")
    assert max_pixel_difference(zero, base) == 0 and max_pixel_difference(half, base) > 5


def test_the_shipped_model_as_one_checkpoint_file_gives_its_images(tmp_path):
    from pipeline.lab.fixtures.to_ldm import write_checkpoint

    file = write_checkpoint(MODEL, tmp_path / "checkpoints" / "tiny-shapes.safetensors")
    prompt = "a large red circle in the centre, blue background"
    folder = run(tmp_path, "folder", prompt)
    single = run(tmp_path, "file", prompt, **{"model.path": file, "model.config": MODEL})
    assert max_pixel_difference(single, folder) == 0
