"""The config schema and its loader: defaults <- base.yaml <- task YAML <- command-line key=value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.common import yaml_guard
from pipeline.common.errors import UserError
from pipeline.common.literal import literal, text_in_section
from pipeline.common.seeds import settle_seed
from pipeline.run.overrides import describe, nest, parse_override, update_entry


@dataclass
class ModelConfig:
    """Where the weights come from and how they are placed."""

    path: str = "models/tiny-shapes"
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    config: str = ""  # a single-file checkpoint's configs: sd1 | sd2 | sd2-base | sdxl | sdxl-refiner | a folder ("" = from its keys)
    without: list[str] = field(default_factory=list)  # optional parts left unloaded: [t5] runs SD3 without its T5


@dataclass
class SchedulerConfig:
    """A registry name (or A1111 display name) and overrides for the scheduler's config."""

    name: str = "ddim"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SkipLayerConfig:
    """SD3.5's skip-layer guidance (diffusers' skip_guidance_layers ...): a pass with these transformer layers
    skipped, its difference from the conditional prediction added at `scale`, between the `start` and `stop`
    shares of the steps. No layers = off."""

    layers: list[int] = field(default_factory=list)
    scale: float = 2.8
    start: float = 0.01
    stop: float = 0.2


@dataclass
class PerformanceConfig:
    """Speed and memory options; each is measured in docs/benchmarks.md."""

    attention_slicing: bool = False
    channels_last: bool = False
    compile: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    cpu_offload: bool = False
    sequential_offload: bool = False
    guidance_cutoff: float = 1.0
    deepcache_interval: int = 1
    deepcache_branch: int = 0
    token_merging: float = 0.0


@dataclass
class LoraEntry:
    """A LoRA file and its weight (0 = the base model's image)."""

    path: str = ""
    weight: float = 1.0


@dataclass
class ControlNetEntry:
    """A ControlNet and its control image (A1111's ControlNet unit)."""

    path: str = ""  # a folder, hub id or single-file checkpoint
    image: str = ""  # the control image (a map, or a picture for the preprocessor)
    preprocessor: str = "none"  # none (the image is the map) | canny | depth | inpaint (the run's masked picture)
    weight: float = 1.0  # A1111's Control Weight, diffusers' controlnet_conditioning_scale
    start: float = 0.0  # A1111's Starting Control Step, diffusers' control_guidance_start (a share of the steps)
    end: float = 1.0  # A1111's Ending Control Step, diffusers' control_guidance_end
    guess_mode: bool = False  # A1111's "ControlNet is more important": the conditional half only, diffusers' guess_mode
    config: str = ""  # a single-file ControlNet's configs
    depth_estimator: str = ""  # preprocessor depth's estimator (a DPT folder or hub id); default: the model's own


@dataclass
class AdapterEntry:
    """A T2I-Adapter and its control image."""

    path: str = ""
    image: str = ""
    preprocessor: str = "none"
    weight: float = 1.0  # diffusers' adapter_conditioning_scale


@dataclass
class IPAdapterEntry:
    """An IP-Adapter and its reference image."""

    path: str = ""  # an IP-Adapter weight file (diffusers' load_ip_adapter reads it)
    image: str = ""
    weight: float = 1.0  # diffusers' set_ip_adapter_scale


@dataclass
class OutpaintConfig:
    """Pixels to add on each side of the image before inpainting the new border."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0


@dataclass
class RefinerConfig:
    """An SDXL refiner that takes over the base's latents for the last steps (A1111's "Refiner switch at")."""

    path: str = ""  # a refiner (or any SDXL) folder, hub id or checkpoint file; "" = no refiner
    switch_at: float = 0.8  # the share of the steps the base runs (diffusers' denoising_end / denoising_start)
    config: str = ""  # a single-file refiner's configs, as model.config


@dataclass
class Config:
    """Every key a generation run reads; see the README's config table."""

    task: str = "txt2img"
    model: ModelConfig = field(default_factory=ModelConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    prompt: str = ""
    negative_prompt: str = ""
    prompt_syntax: str = "a1111"
    clip_skip: int = 1
    max_sequence_length: Optional[int] = None  # T5's tokens (SD3, FLUX); null = the family's (SD3 256); longer cut
    skip_layer_guidance: SkipLayerConfig = field(default_factory=SkipLayerConfig)  # SD3.5 (docs/sd3.md)
    loras: list[LoraEntry] = field(default_factory=list)
    lora_dir: str = "models/loras"
    embeddings: list[str] = field(default_factory=list)
    embeddings_dir: str = "models/embeddings"
    steps: int = 50
    guidance_scale: float = 7.5
    guidance_rescale: float = 0.0
    true_cfg_scale: float = 1.0  # FLUX: classifier-free guidance with the negative prompt when > 1 (guidance_scale
    # is then FLUX-dev's distilled guidance input); other families guide by guidance_scale
    height: Optional[int] = None
    width: Optional[int] = None
    seed: int = 0
    num_images: int = 1
    batch_size: int = 1
    output_dir: str = "outputs"
    image: Optional[str] = None
    mask: Optional[str] = None
    strength: float = 0.8
    depth_map: Optional[str] = None
    mask_blur: int = 0
    keep_unmasked: bool = False
    blend_known: bool = False  # 9-channel inpainting UNets too get the kept latents blended back (A1111, ComfyUI)
    outpaint: OutpaintConfig = field(default_factory=OutpaintConfig)
    # SDXL's size and crop conditioning, [height, width] and [top, left] as diffusers orders them; null = the run's
    # size (the negative keys: docs/sdxl.md, as diffusers defaults them). Other families take none of them.
    original_size: Optional[list[int]] = None
    crops_coords_top_left: list[int] = field(default_factory=lambda: [0, 0])
    target_size: Optional[list[int]] = None
    negative_original_size: Optional[list[int]] = None
    negative_crops_coords_top_left: Optional[list[int]] = None
    negative_target_size: Optional[list[int]] = None
    aesthetic_score: float = 6.0  # an SDXL refiner's (requires_aesthetics_score) conditioning
    negative_aesthetic_score: float = 2.5
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    # The control axis (docs/controls.md): models that read a picture and feed the UNet, with any task.
    controlnets: list[ControlNetEntry] = field(default_factory=list)
    adapters: list[AdapterEntry] = field(default_factory=list)
    adapter_conditioning_factor: float = 1.0  # the share of the steps the T2I-Adapters' features are added
    ip_adapters: list[IPAdapterEntry] = field(default_factory=list)
    image_encoder: str = ""  # the IP-Adapters' CLIP vision encoder folder ("" = the model's image_encoder part)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)


BASE_NAME = "base.yaml"
OPEN_MAPPINGS = ("scheduler.options",)  # free-form mappings inside the strict schema


def _read_yaml(path: Path) -> dict:
    """Read one YAML mapping (UTF-8 or UTF-16 text) with yaml.safe_load semantics, or say why it cannot be read."""
    if path.is_dir():
        raise UserError(f"config file {path} is a directory, not a YAML file.")
    if not path.exists():
        raise UserError(f"config file {path} does not exist.")
    if not path.is_file():
        raise UserError(f"config file {path} is not a regular file (a YAML file is needed).")
    try:
        data = yaml_guard.load_file(path, f"config file {path}")
    except OSError as err:
        raise UserError(f"config file {path} cannot be read ({err.strerror or type(err).__name__}).") from None
    except yaml.reader.ReaderError as err:
        if err.encoding == "unicode":  # decoded, but holding a character YAML does not allow
            what = f"character {err.position} is U+{err.character:04X}"
        else:
            what = f"byte {err.position} is not {err.encoding.upper()}"
        raise UserError(f"config file {path} is not a text YAML file ({what}).") from None
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, not a {type(data).__name__}.")
    return data


def _check_open_mappings(data: dict, source: str) -> None:
    """A free-form mapping (scheduler.options) given as a list: OmegaConf would raise a bare TypeError."""
    for key in OPEN_MAPPINGS:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, list):
            raise UserError(f"{source}: {key} must be a mapping of names to values, e.g. "
                            f"{{timestep_spacing: trailing}}; got the list {node!r}.")


def merge(cfg: DictConfig, data: dict, source: str) -> DictConfig:
    """Merge a mapping into the config, naming the source when a key or type is wrong; text is never interpolated."""
    _check_open_mappings(data, source)
    misplaced = text_in_section(data, OmegaConf.get_type(cfg))
    if misplaced:
        key, kind, text = misplaced
        raise UserError(f"{source}: key '{key}' must be a {kind}; got the text {text!r}.")
    try:
        merged = OmegaConf.merge(cfg, OmegaConf.create(literal(data)))
        OmegaConf.to_container(merged, resolve=True)  # text given for a number or a switch fails here, naming its key
        return merged
    except OmegaConfBaseException as err:
        raise UserError(f"{source}: {describe(err).rstrip('.')}.") from None


def load(path: str | Path | None, overrides: list[str] = (), schema: type = Config, settle: bool = True) -> DictConfig:
    """Build a config: schema defaults, then base.yaml beside the file (for the run schema), the file, overrides;
    a negative seed becomes a random one unless `settle` is False (a job refuses it: it could not resume)."""
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    for key in OPEN_MAPPINGS:
        node = OmegaConf.select(cfg, key)
        if node is not None:
            OmegaConf.set_struct(node, False)
    if path is not None:
        path = Path(path)
        base = path.parent / BASE_NAME
        if issubclass(schema, Config) and base.is_file() and base.resolve() != path.resolve():
            cfg = merge(cfg, _read_yaml(base), str(base))
        cfg = merge(cfg, _read_yaml(path), str(path))
    for item in overrides:
        key, value = parse_override(item, schema)
        if any(part.isdigit() for part in key.split(".")):
            update_entry(cfg, key, value, f"command-line override '{item}'")
        else:
            cfg = merge(cfg, nest(key, value), f"command-line override '{item}'")
    return settle_seed(cfg) if issubclass(schema, Config) and settle else cfg


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text, as saved beside every output."""
    return OmegaConf.to_yaml(cfg, resolve=True)
