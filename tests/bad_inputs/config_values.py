"""Config keys with wrong names, types or values (the families of earlier issues, kept in the one table)."""

from bad_inputs import Case

CASES = [
    Case("unknown key", ["stpes=5"], "unknown key 'stpes'"),
    Case("wrong type", ["steps=many"], "key 'steps'"),
    Case("steps below one", ["steps=0"], "steps must be an integer >= 1"),
    Case("unknown scheduler", ["scheduler.name=warp9"], "scheduler.name must be one of"),
    Case("bad rescale", ["guidance_rescale=1.5"], "guidance_rescale must be a number in [0, 1]"),
    Case("bad dtype", ["model.dtype=float8"], "model.dtype must be one of"),
    Case("compare: unknown scheduler", ["compare.schedulers=[warp9]"], "compare.schedulers[0]", tool="compare"),
    Case("latents: missing image", ["image=/nonexistent.png"], "/nonexistent.png", tool="roundtrip"),
]
