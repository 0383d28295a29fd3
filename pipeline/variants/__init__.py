"""The variant registry. A variant is a module with:

check(cfg, info) -> (width, height) of its input image, or None to use the model's native size;
    raises UserError for bad input, before any weights load;
prepare(ctx) -> LoopSetup: starting latents, timesteps and hooks for the one loop;
extra_parts(cfg) -> names of optional model parts to load (optional; depth2img's estimator).
"""

from types import ModuleType

from pipeline.variants import depth2img, img2img, inpaint, outpaint, txt2img

VARIANTS: dict[str, ModuleType] = {
    "txt2img": txt2img,
    "img2img": img2img,
    "inpaint": inpaint,
    "depth2img": depth2img,
    "outpaint": outpaint,
}
