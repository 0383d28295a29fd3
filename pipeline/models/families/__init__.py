"""The model families the pipeline knows, and how a model's family is told from its configs before loading."""

from __future__ import annotations

from pipeline.models.families.family import Family, Part, SingleFile
from pipeline.models.families.sd import SD1, SD2
from pipeline.models.families.flux import FLUX
from pipeline.models.families.sd3 import SD3
from pipeline.models.families.sdxl import SDXL, SDXL_REFINER

FAMILIES: dict[str, Family] = {family.name: family for family in (SDXL, SDXL_REFINER, SD1, SD2, SD3, FLUX)}
KNOWN_PARTS: dict[str, Part] = {part.name: part for family in FAMILIES.values() for part in family.parts}

__all__ = ["FAMILIES", "KNOWN_PARTS", "Family", "Part", "SingleFile", "family_of"]


def family_of(configs: dict[str, dict]) -> Family:
    """The first family (in FAMILIES' order) whose parts the configs cover and whose test they pass."""
    for family in FAMILIES.values():
        weighted = {part.name for part in family.weighted if not part.optional}
        if weighted <= set(configs) and family.matches(configs):
            return family
    raise ValueError(f"no model family has the parts {sorted(configs)}")
