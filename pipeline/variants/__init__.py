"""The variant registry: task name -> module with check(cfg, info) and prepare(ctx) -> LoopSetup."""

from types import ModuleType

from . import txt2img

VARIANTS: dict[str, ModuleType] = {
    "txt2img": txt2img,
}
