"""Float keys that are NaN, infinite or so large they overflow: refused before any weights load, naming the key."""

from pathlib import Path

from bad_inputs import Case

PICTURE = Path(__file__).parents[2] / "configs" / "inputs" / "shapes-red-circle.png"
GUIDANCE = "guidance_scale must be a number in [0, 100]"


def yaml_with(text: str):
    """A task file for the tiny model that sets the keys in `text` itself (the YAML path, not an override)."""

    def make(tmp_path: Path, tiny_model: Path) -> Path:
        path = tmp_path / "nonfinite.yaml"
        path.write_text(f"model:\n  path: {tiny_model}\n  dtype: float32\noutput_dir: {tmp_path / 'out'}\n"
                        f"steps: 2\nimage: {PICTURE}\n{text}")
        return path

    return make


CASES = [
    Case("guidance_scale .inf", ["guidance_scale=.inf"], f"{GUIDANCE}; got inf."),
    Case("guidance_scale 1e30", ["guidance_scale=1e30"], f"{GUIDANCE}; got 1e+30."),
    Case("guidance_scale 101", ["guidance_scale=101"], f"{GUIDANCE}; got 101.0."),
    Case("guidance_scale .nan", ["guidance_scale=.nan"], f"{GUIDANCE}; got nan."),
    Case("guidance_scale -.inf", ["guidance_scale=-.inf"], f"{GUIDANCE}; got -inf."),
    Case("guidance_scale .inf in the YAML file", [], f"{GUIDANCE}; got inf.",
         config=yaml_with("guidance_scale: .inf\n")),
    Case("guidance_scale 1e30 in the YAML file", [], f"{GUIDANCE}; got 1e+30.",
         config=yaml_with("guidance_scale: 1e30\n")),
    Case("guidance_rescale .nan", ["guidance_rescale=.nan"], "guidance_rescale must be a number in [0, 1]; got nan."),
    Case("guidance_rescale .inf", ["guidance_rescale=.inf"], "guidance_rescale must be a number in [0, 1]; got inf."),
    Case("strength .nan", ["task=img2img", f"image={PICTURE}", "strength=.nan"],
         "strength must be a number in [0, 1]; got nan."),
    Case("strength .inf", ["task=img2img", f"image={PICTURE}", "strength=.inf"],
         "strength must be a number in [0, 1]; got inf."),
    Case("guidance_cutoff .nan", ["performance.guidance_cutoff=.nan"],
         "performance.guidance_cutoff must be a fraction in [0, 1]; got nan."),
    Case("guidance_cutoff .inf", ["performance.guidance_cutoff=.inf"],
         "performance.guidance_cutoff must be a fraction in [0, 1]; got inf."),
    Case("token_merging .nan", ["performance.token_merging=.nan"],
         "performance.token_merging must be a ratio in [0, 0.75]; got nan."),
    Case("token_merging .inf", ["performance.token_merging=.inf"],
         "performance.token_merging must be a ratio in [0, 0.75]; got inf."),
    Case("scheduler option .nan", ["scheduler.options.beta_end=.nan"],
         "scheduler.options.beta_end must hold finite numbers only; got nan."),
    Case("scheduler option list with .inf", ["scheduler.options={trained_betas: [0.001, .inf]}"],
         "scheduler.options.trained_betas must hold finite numbers only; got [0.001, inf]."),
    Case("compare: guidance_scales .inf", ["compare.guidance_scales=[7.5, .inf]"],
         "compare.guidance_scales[1] must be a number in [0, 100]; got inf.", tool="compare"),
    Case("compare: guidance_scales 1e30", ["compare.guidance_scales=[1e30]"],
         "compare.guidance_scales[0] must be a number in [0, 100]; got 1e+30.", tool="compare"),
    Case("compare: guidance_scales .nan", ["compare.guidance_scales=[.nan]"],
         "compare.guidance_scales[0] must be a number in [0, 100]; got nan.", tool="compare"),
    Case("compare: the run's guidance_scale .inf", ["guidance_scale=.inf"], f"{GUIDANCE}; got inf.", tool="compare"),
    Case("compare: scheduler option .nan", ["compare.schedulers=[ddim, {name: euler_a, options: {beta_end: .nan}}]"],
         "compare.schedulers[1]: options.beta_end must hold finite numbers only; got nan.", tool="compare"),
    Case("latents: noise_level .nan", ["latents.noise_level=.nan"],
         "latents.noise_level must be a number in [0, 1]; got nan.", tool="interpolate"),
    Case("latents: noise_level .inf", ["latents.noise_level=.inf"],
         "latents.noise_level must be a number in [0, 1]; got inf.", tool="roundtrip"),
    Case("latents: noise_levels with .inf", ["latents.noise_levels=[0, .inf]"],
         "latents.noise_levels[1] must be a number in [0, 1]; got inf.", tool="noise"),
    Case("latents: noise_levels with .nan", ["latents.noise_levels=[.nan]"],
         "latents.noise_levels[0] must be a number in [0, 1]; got nan.", tool="noise"),
    Case("latents: seed frames with guidance_scale 1e30", ["latents.between=seeds", "guidance_scale=1e30"],
         f"{GUIDANCE}; got 1e+30.", tool="interpolate"),
]
