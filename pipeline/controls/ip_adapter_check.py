"""An IP-Adapter entry's checks before any weights load: the weight file's header (its kind and sizes) against the
model's UNet and the CLIP vision encoder's config, the encoder folder itself, and the reference image."""

from __future__ import annotations

from pathlib import Path
from omegaconf import DictConfig
from safetensors import SafetensorError, safe_open
from transformers import CLIPVisionConfig

from pipeline.common.errors import UserError
from pipeline.common.inputs import read_image
from pipeline.models.inspect import ModelInfo

Shapes = dict[str, list[int]]
KINDS = {"image_proj.proj.weight": "plain", "image_proj.latents": "plus"}  # a key each kind's projection has


def header(path: str, key: str) -> Shapes:
    """The tensor names and shapes of a safetensors weight file, read from its header alone."""
    if not path:
        raise UserError(f"{key}.path must name an IP-Adapter weight file (.safetensors); it is not set.")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{key}.path {path} " + ("is a directory; name the IP-Adapter's .safetensors file in it."
                                                  if file.is_dir() else "does not exist."))
    if file.suffix != ".safetensors":
        raise UserError(f"{key}.path {path} must be a .safetensors file (IP-Adapter pickle files are not read).")
    try:
        with safe_open(str(file), framework="pt") as weights:
            return {name: list(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError) as error:
        raise UserError(f"{key}.path {path} is not a readable safetensors file ({error}).") from None


def kind_of(shapes: Shapes, key: str, path: str) -> str:
    """'plain' (IP-Adapter) or 'plus' (IP-Adapter Plus), from the keys diffusers' loader tells them by."""
    if not any(name.startswith("ip_adapter.") for name in shapes):
        raise UserError(f"{key}.path {path} is not an IP-Adapter weight file (it has no ip_adapter.* weights).")
    kinds = [kind for name, kind in KINDS.items() if name in shapes]
    if not kinds:
        raise UserError(f"{key}.path {path} is an IP-Adapter of a kind not supported here (FaceID or Full Face); "
                        "IP-Adapter and IP-Adapter Plus files are.")
    return kinds[0]


def encoder_path(cfg: DictConfig, info: ModelInfo) -> str:
    """The CLIP vision encoder folder: image_encoder, else the model folder's image_encoder part."""
    if cfg.image_encoder:
        return cfg.image_encoder
    part = Path(info.path) / "image_encoder"
    if not part.is_dir():
        raise UserError(f"ip_adapters need a CLIP vision encoder: set image_encoder to its folder (model.path "
                        f"{info.path} has no image_encoder folder).")
    return str(part)


def encoder_config(path: str) -> CLIPVisionConfig:
    """The vision encoder's config, without its weights."""
    if Path(path).is_file():
        raise UserError(f"image_encoder {path} is a file; it must be a CLIP vision encoder folder (config.json beside "
                        "the weights).")
    try:
        return CLIPVisionConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0].rstrip(".")
        raise UserError(f"image_encoder {path} is not a readable CLIP vision encoder folder ({reason}).") from None


def cross_attention_dim(info: ModelInfo) -> int:
    """The width of the UNet's text states, which the IP-Adapter's image tokens join."""
    value = info.unet["cross_attention_dim"]
    return value[0] if isinstance(value, (list, tuple)) else value


def check_fit(shapes: Shapes, kind: str, info: ModelInfo, encoder: CLIPVisionConfig, key: str, path: str) -> None:
    """The projection's output width equals the UNet's cross-attention width, and its input width the encoder's
    (image_embeds for the plain kind, the penultimate hidden states for Plus)."""
    if kind == "plain":
        tokens, reads = shapes["image_proj.proj.weight"][0] // 4, shapes["image_proj.proj.weight"][1]
        given, what = encoder.projection_dim, "image embeddings (projection_dim)"
    else:
        tokens, reads = shapes["image_proj.proj_out.weight"][0], shapes["image_proj.proj_in.weight"][1]
        given, what = encoder.hidden_size, "hidden states (hidden_size)"
    width = cross_attention_dim(info)
    if tokens != width:
        raise UserError(f"{key}.path {path} is an IP-Adapter for a model of cross-attention width {tokens}; model.path "
                        f"{info.path} ({info.family.label}) has {width}.")
    if reads != given:
        raise UserError(f"{key}.path {path} reads {what} {reads} wide; image_encoder gives {given}: they were not "
                        "made for each other.")


def check_entries(cfg: DictConfig, info: ModelInfo) -> None:
    """Every ip_adapters entry and the shared encoder; the first mistake raises."""
    if cfg.performance.attention_slicing:
        raise UserError("performance.attention_slicing cannot be combined with ip_adapters (diffusers' IP-Adapter "
                        "attention has no sliced form); set one of them off.")
    encoder = encoder_config(encoder_path(cfg, info))
    for n, entry in enumerate(cfg.ip_adapters):
        key = f"ip_adapters[{n}]"
        if not 0 <= entry.weight <= 2:
            raise UserError(f"{key}.weight must be a number in [0, 2]; got {entry.weight}.")
        shapes = header(entry.path, key)
        check_fit(shapes, kind_of(shapes, key, entry.path), info, encoder, key, entry.path)
        read_image(entry.image, f"{key}.image")

