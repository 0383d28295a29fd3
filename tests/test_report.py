"""The HTML reports as a person sees them: opened in a headless browser, every picture loads, one row per image."""

import numpy as np
from PIL import Image

from browser import rendered, screenshot
from test_compare import load, run


def _painted(path) -> bool:
    """A screenshot with more than a blank page in it."""
    pixels = np.asarray(Image.open(path).convert("L"))
    return pixels.std() > 5 and (pixels < 128).mean() > 0.001


def test_a_comparisons_page_loads_every_picture_and_lists_every_cell(tiny_model, tmp_path):
    result = run(load(tiny_model, tmp_path, "compare.axes=[{key: steps, values: [2, 3]}, "
                                            "{key: prompt_sr, values: [red, green]}]"))
    page = result.files["report"]
    text = page.read_text()
    assert "http" not in text.replace("http-equiv", "")  # nothing fetched from elsewhere
    shown = rendered(page)
    assert shown["rows"] == len(result.cells) == 4
    assert shown["images"] == 4 + 1 and shown["loaded"] == shown["images"]  # thumbnails and the grid
    assert _painted(screenshot(page, tmp_path / "shot.png"))


def test_a_jobs_page_lists_every_image_and_scores_world_captions(tiny_model, tmp_path):
    from pipeline.tools import jobs
    from pipeline.tools.jobs.run import run_job

    path = tmp_path / "job.yaml"
    path.write_text(f"model: {{path: {tiny_model}, dtype: float32, device: cpu}}\nsteps: 2\noutput_dir: {tmp_path / 'out'}\n"
                    "prompts:\n  - a large red circle in the centre, blue background\n"
                    "  - {prompt: a photo of a cat, seed: 4, num_images: 2}\n")
    list(run_job(jobs.load(path), str(path), progress=False))
    page = tmp_path / "out" / "index.html"
    shown = rendered(page)
    assert shown["rows"] == 3 and shown["images"] == 3 == shown["loaded"]
    text = page.read_text()
    assert "<th>adherence</th>" in text and "<th>seconds</th>" in text
    assert _painted(screenshot(page, tmp_path / "shot.png"))
