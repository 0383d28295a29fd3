"""Limits before work (sizes and counts that would exhaust memory or time), and mistakes found by building the
scheduler or reading weight headers: each is one sentence, exit 2, before any weights load."""

import json
import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image
from safetensors.torch import load_file, save_file

from bad_inputs import Case

ROOT = Path(__file__).resolve().parents[2]
RED_CIRCLE = ROOT / "configs" / "inputs" / "shapes-red-circle.png"
MASK = ROOT / "configs" / "inputs" / "shapes-centre-mask.png"


def big_png(tmp: Path) -> Path:
    """A 10 KB PNG that decodes to 9000x9000 (81 million pixels, 243 MB as RGB)."""
    path = tmp / "big.png"
    Image.new("1", (9000, 9000)).save(path)
    return path


def bomb_png(tmp: Path) -> Path:
    """A PNG whose header declares 100000x100000 pixels: PIL's DecompressionBombError."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path = tmp / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def strip_png(tmp: Path) -> Path:
    """A 4096x16 image: few pixels, but 4096 wide, so a grid of many such tiles is huge."""
    path = tmp / "strip.png"
    Image.new("RGB", (4096, 16)).save(path)
    return path


def wide_png(tmp: Path) -> Path:
    """A 5000x16 image: readable, but wider than the latent tools take."""
    path = tmp / "wide.png"
    Image.new("RGB", (5000, 16)).save(path)
    return path


def task_with(text: str):
    """A config file builder: the tiny model and an output folder, plus `text`."""
    def build(tmp: Path, model: Path) -> Path:
        path = tmp / "task.yaml"
        path.write_text(f"model:\n  path: {model}\n  dtype: float32\noutput_dir: {tmp / 'out'}\nsteps: 2\n{text}")
        return path

    return build


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
)
INLINE_BOMB = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
              "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"


def broken_model(edit):
    """Overrides pointing model.path at a copy of the tiny model changed by `edit(folder)`."""
    def build(tmp: Path, model: Path) -> list[str]:
        folder = tmp / "broken-model"
        shutil.copytree(model, folder)
        edit(folder)
        return [f"model.path={folder}"]

    return build


def truncate_unet(folder: Path) -> None:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def empty_text_encoder(folder: Path) -> None:
    (folder / "text_encoder" / "model.safetensors").write_bytes(b"")


def reshape_vae_tensor(folder: Path) -> None:
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["decoder.conv_norm_out.weight"] = tensors["decoder.conv_norm_out.weight"][:5].clone()
    save_file(tensors, weights)


def drop_text_tensor(folder: Path) -> None:
    weights = folder / "text_encoder" / "model.safetensors"
    tensors = load_file(weights)
    del tensors["final_layer_norm.weight"]
    save_file(tensors, weights)


def edit_config(part: str, change):
    def edit(folder: Path) -> None:
        path = folder / part / "config.json"
        config = json.loads(path.read_text())
        change(config)
        path.write_text(json.dumps(config))

    return edit


def shard_missing(folder: Path) -> None:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(folder / "unet" / "part-1.safetensors")
    index = {"metadata": {}, "weight_map": {"conv_in.weight": "part-1.safetensors", "conv_in.bias": "part-2.safetensors"}}
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))


def image_case(name: str, build, key: str, expected: str, tool: str = "generate", extra=()) -> Case:
    """An input image built in tmp_path, named by `key`."""
    return Case(name, lambda tmp, model: [*extra, f"{key}={build(tmp)}"], expected, tool=tool)


IMG2IMG = ["task=img2img"]
CASES = [
    # item 4: counts and sizes, each with its limit in the message
    Case("steps of a billion (euler)", ["scheduler.name=euler", "steps=1000000000"], "steps must be at most 1000"),
    Case("num_images of 10^5", ["num_images=100000"], "num_images must be at most 10000; got 100000."),
    Case("batch_size of 10^5", ["batch_size=100000"], "batch_size must be at most 64"),
    Case("height of 100000", ["height=100000"], "height must be at most 4096 pixels; got 100000."),
    Case("width of 8192", ["width=8192"], "width must be at most 4096 pixels"),
    Case("outpaint.right of 100000", ["task=outpaint", f"image={RED_CIRCLE}", "outpaint.right=100000"],
         "outpaint.right must be at most 4096 pixels"),
    Case("outpainted width over the limit", ["task=outpaint", f"image={RED_CIRCLE}", "outpaint.left=4000",
                                            "outpaint.right=96"], "make the image 4160 pixels wide"),
    image_case("10 KB png of 9000x9000", big_png, "image", "is 9000x9000 (81000000 pixels)", extra=IMG2IMG),
    image_case("decompression bomb header", bomb_png, "image", "declares more than 67108864 pixels", extra=IMG2IMG),
    image_case("inpaint mask of 9000x9000", big_png, "mask", "mask file",
               extra=["task=inpaint", f"image={RED_CIRCLE}"]),
    image_case("latents: image of 9000x9000", big_png, "image", "input images may have at most", tool="roundtrip"),
    image_case("latents: bomb as image_b", bomb_png, "latents.image_b", "latents.image_b file", tool="interpolate"),
    image_case("latents: image wider than 4096", wide_png, "image", "at most 4096 pixels a side", tool="channels"),
    image_case("latents: noise grid too large", strip_png, "image", "the noise grid", tool="noise",
               extra=["latents.noise_levels=[" + ", ".join(["0.5"] * 64) + "]"]),
    Case("alias bomb in a config file", [], "expands to more than 10000 values", config=task_with(BILLION_LAUGHS)),
    Case("alias bomb in an override", [f"scheduler.options.x={INLINE_BOMB}"], "command-line override"),
    Case("alias that contains itself", [], "an alias that contains itself",
         config=task_with("scheduler:\n  options:\n    x: &loop [*loop]\n")),
    Case("config nested 500 deep", [], "more than 32 levels deep",
         config=task_with("prompt: " + "[" * 500 + "]" * 500 + "\n")),
    Case("config of 300 KB", [], "a config may have at most 262144 characters",
         config=task_with("prompt: " + "a" * 300_000 + "\n")),
    Case("latents.frames of a million", ["latents.frames=1000000"], "latents.frames must be at most 256",
         tool="interpolate"),
    Case("latents: 65 noise levels", ["latents.noise_levels=[" + ", ".join(["0.5"] * 65) + "]"],
         "latents.noise_levels must be a list of at most 64 levels; got 65.", tool="noise"),
    Case("latents: frame_ms beyond a GIF's 16 bits", ["latents.frame_ms=100000000"], "latents.frame_ms must be",
         tool="interpolate"),
    Case("latents: strip of 256 frames of 4096x4096", ["latents.between=seeds", "latents.frames=256", "height=4096",
                                                       "width=4096"], "the interpolation strip", tool="interpolate"),
    Case("compare: 65 step counts", ["compare.steps=[" + ", ".join(["1"] * 65) + "]"],
         "compare.steps may have at most 64 entries; got 65.", tool="compare"),
    Case("compare: a step count over 1000", ["compare.steps=[5, 2000]"], "compare.steps[1] must be an integer from 1 to 1000; got 2000.",
         tool="compare"),
    Case("compare: over 1024 cells", ["compare.schedulers=all", "compare.steps=[" + ", ".join(["1"] * 50) + "]"],
         "make 1050 cells; a comparison may have at most 1024.", tool="compare"),
    Case("compare: grid too large", ["compare.schedulers=all", "height=4096", "width=4096"], "the comparison grid",
         tool="compare"),
    # item 5: found by building the scheduler, reading weight headers, checking seeds
    Case("DDIM with 1000 leading steps", ["steps=1000"], "past the last trained one (999)"),
    Case("steps over num_train_timesteps", ["scheduler.options.num_train_timesteps=500", "steps=600"],
         "steps must be at most 500 for this scheduler"),
    Case("seed of 2^70", ["seed=1180591620717411303424"], "seed must be at most 18446744073709551615"),
    Case("last seed past 2^64 - 1", ["seed=18446744073709551615", "num_images=2"],
         "seed must be at most 18446744073709551614"),
    Case("seed of 5000 digits", ["seed=" + "9" * 5000], "has a value that cannot be read"),
    Case("beta_schedule=bogus", ["scheduler.options.beta_schedule=bogus"], "are refused by DDIMScheduler"),
    Case("timestep_spacing=sideways", ["scheduler.options.timestep_spacing=sideways"],
         "DDIMScheduler cannot make steps=2 with scheduler.options (timestep_spacing=sideways)"),
    Case("scheduler options as a list", ["scheduler.options=[1,2]"], "scheduler.options must be a mapping"),
    Case("scheduler options as a list in the file", [], "scheduler.options must be a mapping",
         config=task_with("scheduler:\n  options: [trailing]\n")),
    Case("num_train_timesteps of a billion", ["scheduler.options.num_train_timesteps=1000000000"],
         "scheduler.options.num_train_timesteps must be an integer from 1 to 10000"),
    Case("solver_order of 10^8", ["scheduler.name=dpmpp_2m", "scheduler.options.solver_order=100000000"],
         "scheduler.options.solver_order must be an integer from 1 to 8"),
    Case("LCM beyond its original steps", ["scheduler.name=lcm", "steps=60"], "LCMScheduler cannot make steps=60"),
    Case("truncated unet weights", broken_model(truncate_unet), "unet/diffusion_pytorch_model.safetensors is incomplete"),
    Case("empty text encoder weights", broken_model(empty_text_encoder), "text_encoder/model.safetensors is incomplete"),
    Case("wrong-shaped vae tensor", broken_model(reshape_vae_tensor),
         "has tensor decoder.conv_norm_out.weight of shape [5]"),
    Case("text encoder missing a tensor", broken_model(drop_text_tensor), "lacks tensor final_layer_norm.weight"),
    Case("sharded unet missing a shard", broken_model(shard_missing), "names shard part-2.safetensors, which is missing"),
    Case("vae config without block_out_channels", broken_model(edit_config("vae", lambda c: c.pop("block_out_channels"))),
         "vae/config.json has no 'block_out_channels'"),
    Case("unet config naming no block type", broken_model(edit_config("unet", lambda c: c.update(
        down_block_types=["NoSuchBlock2D", "CrossAttnDownBlock2D"]))), "has a config that builds no model"),
    Case("latents: seed_b of 2^70", ["latents.seed_b=1180591620717411303424"], "latents.seed_b must be",
         tool="interpolate"),
    Case("latents: sampled with seed 2^70", ["latents.sample=true", "seed=1180591620717411303424"],
         "seed must be at most", tool="roundtrip"),
    Case("compare: seed of 2^70", ["seed=1180591620717411303424"], "seed must be at most", tool="compare"),
]
