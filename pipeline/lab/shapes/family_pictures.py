"""The README's pictures of the family's newer members, each made through the normal pipeline from a shipped
config: the ControlNet with its maps, the LCM-LoRA at 1, 2, 4 and 8 steps beside the base, the flow-matching model
beside the base; and, from a model folder
given, the SDXL-format sibling's size and crop conditioning (not shipped yet)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pipeline.run import config
from pipeline.run.generate import check, generate_images, load
from pipeline.tools.drawing import grid
from pipeline.lab.shapes.control_eval import moved
from pipeline.lab.shapes.captions import describe
from pipeline.lab.shapes.layout import layout_map
from pipeline.lab.shapes.world import make_scenes

SEEDS = [0, 1, 2]
LCM_PROMPTS = ["a large red circle in the centre, blue background",
               "a small yellow triangle above a green square, white background",
               "a large purple square on the left, yellow background"]


def images_of(cfg: DictConfig, components, seeds: list[int], **overrides) -> list[Image.Image]:
    """Images of the config with overrides, at the model's size."""
    return generate_images(components, OmegaConf.merge(cfg, overrides), seeds, cfg.height, cfg.width, progress=False)


def loaded(path: Path, overrides: list[str]) -> tuple[DictConfig, object]:
    """A shipped config, checked and loaded once, with its settled size."""
    plan = check(config.load(path, overrides))
    return OmegaConf.merge(plan.cfg, {"height": plan.height, "width": plan.width}), load(plan)


def controlnet_picture(root: Path) -> Image.Image:
    """Rows: the shipped layout map under configs/controlnet.yaml's prompt, and a held-out map under a prompt that
    puts the shape elsewhere; columns: the map, no ControlNet, then three seeds with it."""
    cfg, components = loaded(root / "configs" / "controlnet.yaml", [])
    scene = next(s for s in make_scenes(7001, 20, 0.0) if s.shapes[0].position != "centre")
    rows, labels = [], []
    with tempfile.TemporaryDirectory() as folder:
        held_out = Path(folder) / "map.png"
        Image.fromarray(layout_map(scene)).save(held_out)
        for image, prompt in ((cfg.controlnets[0].image, cfg.prompt), (str(held_out), describe(moved(scene)))):
            entry = {**OmegaConf.to_container(cfg.controlnets[0]), "image": image}
            plain = images_of(cfg, components, SEEDS[:1], prompt=prompt, controlnets=[])
            controlled = images_of(cfg, components, SEEDS, prompt=prompt, controlnets=[entry])
            rows.append([Image.open(image).convert("RGB"), *plain, *controlled])
            labels.append(prompt.replace(", ", ",\n"))
    return grid(rows, ["layout map", "no ControlNet", *[f"seed {s}" for s in SEEDS]], labels)


def lcm_picture(root: Path) -> Image.Image:
    """Rows: three prompts; columns: configs/fast.yaml at 1, 2, 4 and 8 steps, then the base at DDIM 25 steps."""
    fast, components = loaded(root / "configs" / "fast.yaml", [])
    base, base_components = loaded(root / "configs" / "txt2img.yaml", [])
    rows = [[*[images_of(fast, components, [0], prompt=p, steps=n)[0] for n in (1, 2, 4, 8)],
             images_of(base, base_components, [0], prompt=p)[0]] for p in LCM_PROMPTS]
    return grid(rows, ["LCM 1 step", "2 steps", "4 steps", "8 steps", "base, DDIM 25"],
                [p.replace(", ", ",\n") for p in LCM_PROMPTS])


XL_PROMPTS = ["a large red circle in the centre, blue background",
              "a small yellow triangle above a green square, white background"]
XL_VIEWS = [((64, 64), (0, 0)), ((96, 96), (0, 0)), ((96, 96), (0, 16)), ((96, 96), (0, 32)), ((96, 96), (32, 0)),
            ((96, 96), (32, 32)), ((32, 32), (0, 0))]  # (original_size, crops_coords_top_left), both (h, w) / (y, x)


def xl_picture(root: Path, model: str) -> Image.Image:
    """Rows: two prompts, one seed; columns: an SDXL-format model (the recipe's `xl` stage's export) under
    configs/txt2img.yaml's settings with SDXL's original size and crop offset."""
    cfg, components = loaded(root / "configs" / "txt2img.yaml", [f"model.path={model}"])
    rows = [[images_of(cfg, components, [0], prompt=p, original_size=list(size), crops_coords_top_left=list(crop))[0]
             for size, crop in XL_VIEWS] for p in XL_PROMPTS]
    return grid(rows, [f"original {s[0]}\ncrop {c[0]},{c[1]}" for s, c in XL_VIEWS],
                [p.replace(", ", ",\n") for p in XL_PROMPTS])


def flow_picture(root: Path) -> Image.Image:
    """Rows: three prompts; columns: configs/flow.yaml (the flow-matching model) with three seeds, then the base
    (configs/txt2img.yaml, DDIM 25) with the first."""
    flow, components = loaded(root / "configs" / "flow.yaml", [])
    base, base_components = loaded(root / "configs" / "txt2img.yaml", [])
    rows = [[*images_of(flow, components, SEEDS, prompt=p), images_of(base, base_components, [0], prompt=p)[0]]
            for p in LCM_PROMPTS]
    return grid(rows, [*[f"flow, seed {s}" for s in SEEDS], "base, DDIM 25"],
                [p.replace(", ", ",\n") for p in LCM_PROMPTS])


PICTURES = {"controlnet.png": controlnet_picture, "lcm-steps.png": lcm_picture, "flow.png": flow_picture}
