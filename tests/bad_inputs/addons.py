"""Add-on keys (loras, lora_dir, prompt tags) with missing, wrong or ill-fitting files: refused before loading."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from bad_inputs import Case

SHIPPED = Path(__file__).parents[2] / "models" / "tiny-shapes"  # its vocabulary is whole words: red</w>, circle</w>


def _file(tmp_path: Path, name: str, tensors: dict | None = None, text: str | None = None) -> Path:
    """A file under tmp_path/addons: safetensors from tensors, or plain text."""
    folder = tmp_path / "addons"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if tensors is not None:
        save_file(tensors, path)
    else:
        path.write_text(text or "")
    return path


def _lora(tmp_path: Path, name: str, module: str, shape=(4, 32)) -> str:
    """A kohya-format LoRA for one module name, with the given down-projection shape."""
    down, up = torch.zeros(shape), torch.zeros((shape[1], shape[0]))
    tensors = {f"{module}.lora_down.weight": down, f"{module}.lora_up.weight": up, f"{module}.alpha": torch.tensor(4.0)}
    return str(_file(tmp_path, name, tensors))


CASES = [
    Case("lora: missing file", lambda t, m: ["loras=[{path: /nonexistent/style.safetensors}]"],
         "loras[0].path /nonexistent/style.safetensors does not exist"),
    Case("lora: not a weights file", lambda t, m: [f"loras=[{{path: {_file(t, 'notes.txt', text='hi')}}}]"],
         "must be a .safetensors file"),
    Case("lora: pickle refused", lambda t, m: [f"loras=[{{path: {_file(t, 'old.pt', text='x')}}}]"],
         "is a pickle file; set model.allow_pickle=true"),
    Case("lora: not LoRA keys", lambda t, m: [f"loras=[{{path: {_file(t, 'w.safetensors', {'w': torch.zeros(2)})}}}]"],
         "not a LoRA file"),
    Case("lora: keys fit no module",
         lambda t, m: [f"loras=[{{path: {_lora(t, 'other.safetensors', 'lora_unet_no_such_block_attn_to_q')}}}]"],
         "does not fit this model's UNet and text encoder"),
    Case("lora: wrong shapes",
         lambda t, m: [f"loras=[{{path: {_lora(t, 'wide.safetensors', 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q', (4, 320))}}}]"],
         "does not fit this model's UNet and text encoder"),
    Case("lora: infinite weight", lambda t, m: [f"loras=[{{path: {_lora(t, 'x.safetensors', 'lora_unet_a')}, weight: .inf}}]"],
         "must be a finite number"),
    Case("lora tag: no such file", lambda t, m: ["prompt=a <lora:nothing:0.5> circle", f"lora_dir={t}"],
         "prompt tag <lora:nothing> names no file in lora_dir"),
    Case("lora tag: weight not a number", lambda t, m: ["prompt=a <lora:style:heavy> circle"],
         "must end in a number (its weight); got 'heavy'"),
    Case("lora tag: a relative path out of lora_dir",
         lambda t, m: [f"prompt=a <lora:../addons/{Path(_lora(t, 'outside.safetensors', 'lora_unet_a')).stem}:1> "
                       "circle", f"lora_dir={t / 'loras'}"],
         "prompt tag <lora:../addons/outside> must name a file of lora_dir by its name alone"),
    Case("lora tag: an absolute path",
         lambda t, m: [f"prompt=a <lora:{Path(_lora(t, 'outside.safetensors', 'lora_unet_a')).with_suffix('')}> "
                       "circle", f"lora_dir={t}"],
         "must name a file of lora_dir by its name alone, without folders, '..' or an absolute path"),
    Case("lora tag: a Windows separator", lambda t, m: ["prompt=a <lora:..\\addons\\x:1> circle"],
         "must name a file of lora_dir by its name alone"),
    Case("lora tag: '..'", lambda t, m: ["prompt=a <lora:..:1> circle"], "prompt tag <lora:..> must name a file"),
]

CASES += [
    Case("embedding: missing file", lambda t, m: ["embeddings=[/nonexistent/style.safetensors]"],
         "embeddings[0] /nonexistent/style.safetensors does not exist"),
    Case("embedding: pickle refused", lambda t, m: [f"embeddings=[{_file(t, 'old.pt', text='x')}]"],
         "is a pickle file; set model.allow_pickle=true"),
    Case("embedding: wrong width",
         lambda t, m: [f"embeddings=[{_file(t, 'wide.safetensors', {'emb_params': torch.zeros(2, 768)})}]"],
         "holds vectors of width 768, but this model's text encoder takes 32"),
    Case("embedding: token is a word already",
         lambda t, m: [f"embeddings=[{_file(t, 'a.safetensors', {'emb_params': torch.zeros(1, 32)})}]"],
         "its token 'a' is already a word of this model's tokenizer"),
    Case("embedding: no vectors",
         lambda t, m: [f"embeddings=[{_file(t, 'empty.safetensors', {'emb_params': torch.zeros(0, 32)})}]"],
         "empty.safetensors holds no vectors (its tensor has 0 rows); it is not a usable embedding"),
    Case("embedding: named like a word of a word-level vocabulary",
         lambda t, m: [f"model.path={SHIPPED}", "prompt=a large red circle in the centre",
                       f"embeddings_dir={_file(t, 'red.safetensors', {'emb_params': torch.ones(1, 64)}).parent}"],
         "its token 'red' is already a word of this model's tokenizer; rename the file"),
    Case("embedding: named like a word, in capitals",
         lambda t, m: [f"model.path={SHIPPED}", f"embeddings=[{_file(t, 'Circle.safetensors', {'emb_params': torch.ones(1, 64)})}]"],
         "its token 'Circle' is already a word of this model's tokenizer"),
    Case("embedding: not an embedding",
         lambda t, m: [f"embeddings=[{_file(t, 'two.safetensors', {'x': torch.zeros(2), 'y': torch.zeros(2)})}]"],
         "is not an embedding file diffusers can read"),
]
