"""Session fixtures for the SDXL tests: tiny base, 9-channel inpaint and refiner folders, and 32x32 inputs."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.lab.fixtures.tiny_sdxl import build_tiny_sdxl

SIZE = 32  # image side in pixels (16x16 latents)


@pytest.fixture(scope="session")
def sdxl_base(tmp_path_factory) -> Path:
    """A tiny random SDXL base model folder."""
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "base", "base")


@pytest.fixture(scope="session")
def sdxl_inpaint(tmp_path_factory) -> Path:
    """A tiny random SDXL inpainting model folder (9-channel UNet)."""
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "inpaint", "inpaint")


@pytest.fixture(scope="session")
def sdxl_refiner(tmp_path_factory) -> Path:
    """A tiny random SDXL refiner folder (text_encoder_2 only, aesthetic-score time ids)."""
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "refiner", "refiner")


@pytest.fixture(scope="session")
def sdxl_inputs(tmp_path_factory) -> dict[str, Path]:
    """A 32x32 test picture (gradient, a square, noise) and a mask over part of its right half."""
    folder = tmp_path_factory.mktemp("sdxl_inputs")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    picture = np.stack([x * 8, y * 8, 255 - x * 8], axis=-1).astype(float)
    picture[8:20, 6:18] = [250, 40, 40]
    picture = np.clip(picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[4:28, 16:30] = 255
    paths = {"image": folder / "image.png", "mask": folder / "mask.png"}
    Image.fromarray(picture).save(paths["image"])
    Image.fromarray(mask, mode="L").save(paths["mask"])
    return paths
