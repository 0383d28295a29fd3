"""Config keys with wrong names, types or values (the families of earlier issues, kept in the one table)."""

from bad_inputs import Case

CASES = [
    Case("unknown key", ["stpes=5"], "unknown key 'stpes'"),
    Case("wrong type", ["steps=many"], "key 'steps'"),
    Case("steps below one", ["steps=0"], "steps must be an integer >= 1"),
    Case("unknown scheduler", ["scheduler.name=warp9"], "scheduler.name must be one of"),
    Case("bad rescale", ["guidance_rescale=1.5"], "guidance_rescale must be a number in [0, 1]"),
    Case("bad dtype", ["model.dtype=float8"], "model.dtype must be one of"),
    Case("unknown prompt syntax", ["prompt_syntax=a1112"], "prompt_syntax must be one of a1111, compel, none"),
    Case("clip skip zero", ["clip_skip=0"], "clip_skip must be an integer from 1"),
    Case("clip skip past the layers", ["clip_skip=6"], "to 5 (this text encoder's layers); got 6"),
    Case("clip skip with compel", ["clip_skip=2", "prompt_syntax=compel"], "not compel"),
    Case("compare: unknown scheduler", ["compare.schedulers=[warp9]"], "compare.schedulers[0]", tool="compare"),
    Case("latents: missing image", ["image=/nonexistent.png"], "/nonexistent.png", tool="roundtrip"),
]
