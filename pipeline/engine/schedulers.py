"""The scheduler registry: our names and AUTOMATIC1111's (and Forge's) display names -> diffusers classes + overrides,
each serving one kind of model: noise-prediction diffusion (SD 1.x, 2.x, XL) or flow matching (SD3, FLUX).

Flow-matching schedulers keep diffusers' contract but two attributes: they start from pure noise (sigma 1, no
`init_noise_sigma`) and the model reads the latents as they are (no `scale_model_input`); `noise_sigma` and
`scale_input` say so for every scheduler."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from pipeline.common.errors import UserError, reason
from pipeline.common.limits import MAX_STEPS
from pipeline.common.quiet import quiet_libraries

KARRAS = {"use_karras_sigmas": True}
# Scheduler options that size an allocation when the scheduler is built or stepped: their upper bounds.
OPTION_LIMITS = {"num_train_timesteps": 10_000, "original_inference_steps": MAX_STEPS, "solver_order": 8}
SDE = {"algorithm_type": "sde-dpmsolver++"}
NOISE, FLOW = "noise", "flow"  # the kinds of model a scheduler serves (a family's `schedulers`)
KINDS = {NOISE: "noise-prediction diffusion (Stable Diffusion 1.x, 2.x, XL)", FLOW: "flow matching (SD3, FLUX)"}


@dataclass(frozen=True)
class ModelKey:
    """An override whose value is the model's own scheduler config value (a flow model's `shift` becomes DPM-Solver's
    `flow_shift`), or `default` where the config has none."""

    key: str
    default: Any

    def __repr__(self) -> str:
        """How the registry listing shows it."""
        return f"<the model's {self.key}>"


FLOW_SIGMAS = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": ModelKey("shift", 1.0)}


@dataclass(frozen=True)
class SchedulerSpec:
    """A diffusers scheduler class, the config overrides that make it this sampler, and its A1111 label."""

    cls: type[SchedulerMixin]
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    serves: str = NOISE


SCHEDULERS: dict[str, SchedulerSpec] = {
    "pndm": SchedulerSpec(PNDMScheduler, "PLMS"),
    "lms": SchedulerSpec(LMSDiscreteScheduler, "LMS"),
    "lms_karras": SchedulerSpec(LMSDiscreteScheduler, "LMS Karras", KARRAS),
    "ddim": SchedulerSpec(DDIMScheduler, "DDIM"),
    "ddpm": SchedulerSpec(DDPMScheduler, "DDPM"),
    "euler": SchedulerSpec(EulerDiscreteScheduler, "Euler"),
    "euler_a": SchedulerSpec(EulerAncestralDiscreteScheduler, "Euler a"),
    "heun": SchedulerSpec(HeunDiscreteScheduler, "Heun"),
    "dpm2": SchedulerSpec(KDPM2DiscreteScheduler, "DPM2"),
    "dpm2_karras": SchedulerSpec(KDPM2DiscreteScheduler, "DPM2 Karras", KARRAS),
    "dpm2_a": SchedulerSpec(KDPM2AncestralDiscreteScheduler, "DPM2 a"),
    "dpm2_a_karras": SchedulerSpec(KDPM2AncestralDiscreteScheduler, "DPM2 a Karras", KARRAS),
    "dpmpp_2m": SchedulerSpec(DPMSolverMultistepScheduler, "DPM++ 2M"),
    "dpmpp_2m_karras": SchedulerSpec(DPMSolverMultistepScheduler, "DPM++ 2M Karras", KARRAS),
    "dpmpp_2m_sde": SchedulerSpec(DPMSolverMultistepScheduler, "DPM++ 2M SDE", SDE),
    "dpmpp_2m_sde_karras": SchedulerSpec(DPMSolverMultistepScheduler, "DPM++ 2M SDE Karras", {**SDE, **KARRAS}),
    "dpmpp_sde": SchedulerSpec(DPMSolverSDEScheduler, "DPM++ SDE"),
    "dpmpp_sde_karras": SchedulerSpec(DPMSolverSDEScheduler, "DPM++ SDE Karras", KARRAS),
    "unipc": SchedulerSpec(UniPCMultistepScheduler, "UniPC"),
    "deis": SchedulerSpec(DEISMultistepScheduler, "DEIS"),
    "lcm": SchedulerSpec(LCMScheduler, "LCM"),
    "flow_euler": SchedulerSpec(FlowMatchEulerDiscreteScheduler, "Euler", serves=FLOW),
    "flow_euler_karras": SchedulerSpec(FlowMatchEulerDiscreteScheduler, "Euler Karras", KARRAS, serves=FLOW),
    "flow_euler_beta": SchedulerSpec(FlowMatchEulerDiscreteScheduler, "Euler Beta", {"use_beta_sigmas": True},
                                     serves=FLOW),
    "flow_heun": SchedulerSpec(FlowMatchHeunDiscreteScheduler, "Heun", serves=FLOW),
    "flow_dpmpp_2m": SchedulerSpec(DPMSolverMultistepScheduler, "DPM++ 2M", FLOW_SIGMAS, serves=FLOW),
    "flow_unipc": SchedulerSpec(UniPCMultistepScheduler, "UniPC", FLOW_SIGMAS, serves=FLOW),
}


def _normalise(name: str) -> str:
    """Fold case, spaces, dashes and '+' so 'DPM++ 2M Karras' and 'dpmpp-2m-karras' meet."""
    return name.strip().lower().replace("++", "pp").replace("+", "p").replace(" ", "_").replace("-", "_")


def serving(kind: str) -> dict[str, SchedulerSpec]:
    """The registered schedulers that serve one kind of model (NOISE or FLOW)."""
    return {key: spec for key, spec in SCHEDULERS.items() if spec.serves == kind}


def aliases(kind: str) -> dict[str, str]:
    """Normalised keys and labels -> registry keys, among the schedulers of one kind (labels repeat across kinds:
    'Euler' is EulerDiscreteScheduler for a UNet and FlowMatchEulerDiscreteScheduler for a flow model)."""
    found = {_normalise(spec.label): key for key, spec in serving(kind).items()}
    found.update({key: key for key in serving(kind)})
    return found



def resolve(name: str, kind: str = NOISE, model: str = "") -> str:
    """The registry key for a name or display name among the schedulers of `kind`, or a UserError listing them
    (naming the model, `model`, when the name is a scheduler of the other kind)."""
    key = aliases(kind).get(_normalise(str(name)))
    if key is not None:
        return key
    other = next((k for k in KINDS if k != kind and _normalise(str(name)) in aliases(k)), None)
    if other is not None:
        takes = ", ".join(f"{key} ({spec.label})" for key, spec in serving(kind).items())
        raise UserError(f"scheduler.name '{name}' is a sampler for {KINDS[other]} models; {model or 'this model'} "
                        f"is a {KINDS[kind]} model, which takes: {takes}.")
    raise UserError(f"scheduler.name must be one of {', '.join(serving(kind))}; got '{name}'.")


def check_known(name: str) -> None:
    """Refuse, before any model is read, a name no scheduler of any kind has (listing the noise-prediction ones)."""
    if not any(_normalise(str(name)) in aliases(kind) for kind in KINDS):
        resolve(name)


def spec_of(name: str) -> SchedulerSpec:
    """The spec of a registry key, or of a noise-prediction scheduler's name or label."""
    return SCHEDULERS[name] if name in SCHEDULERS else SCHEDULERS[resolve(name)]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse option keys the scheduler class does not take (diffusers would ignore a typo silently), and NaN or inf."""
    spec = spec_of(name)
    known = set(inspect.signature(spec.cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(
            f"scheduler.options has keys {spec.cls.__name__} does not take: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})."
        )
    for key, value in options.items():
        if not _finite(value):
            raise UserError(f"scheduler.options.{key} must hold finite numbers only; got {value!r}.")
    for key, limit in OPTION_LIMITS.items():
        value = options.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= limit:
            raise UserError(f"scheduler.options.{key} must be an integer from 1 to {limit}; got {value}.")


def _finite(value: Any) -> bool:
    """False when a number in the value (a float, or one inside a list or mapping) is NaN or inf."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    return True


def check_runnable(name: str, base_config: Mapping[str, Any], options: Mapping[str, Any], steps: int,
                   schedule: Callable[[Any, int], dict] | None = None) -> None:
    """Build the scheduler and set its timesteps (no weights, milliseconds): bad option values and step counts
    it cannot make become one sentence before any weights load. `schedule(scheduler, steps)` gives the model
    family's further set_timesteps arguments (FLUX's sigmas and shift), which the scheduler must take."""
    cls = spec_of(name).cls.__name__
    shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "none"
    try:
        with quiet_libraries():
            scheduler = make_scheduler(name, base_config, options, [0])
    except Exception as err:  # diffusers raises ValueError, NotImplementedError, TypeError... for a bad value
        raise UserError(f"scheduler.options ({shown}) are refused by {cls} ({reason(err)}).") from None
    trained = scheduler.config.num_train_timesteps
    if steps > trained:
        raise UserError(f"steps must be at most {trained} for this scheduler (its num_train_timesteps); got {steps}.")
    extra = schedule(scheduler, steps) if schedule is not None else {}
    missing = sorted(set(extra) - set(inspect.signature(scheduler.set_timesteps).parameters))
    if missing:
        raise UserError(f"{cls} cannot follow this model's schedule: its set_timesteps takes no {' or '.join(missing)} "
                        "(the family's sigmas and resolution-dependent shift); choose another scheduler.name.")
    try:
        scheduler.set_timesteps(steps, **extra)
    except Exception as err:
        raise UserError(f"{cls} cannot make steps={steps} with scheduler.options ({shown}) ({reason(err)}).") from None
    latest = int(max(scheduler.timesteps))
    # e.g. steps=1000 with steps_offset=1 and 'leading' spacing asks for timestep 1000 (a flow scheduler's timesteps
    # are its sigmas x 1000: 1000 at pure noise, as trained)
    if spec_of(name).serves == NOISE and latest > trained - 1:
        raise UserError(f"steps={steps} with scheduler.options ({shown}) makes {cls} start at timestep {latest}, past "
                        f"the last trained one ({trained - 1}); lower steps or steps_offset, or set "
                        f"scheduler.options.timestep_spacing=trailing.")


def scheduler_options(name: str, options: Mapping[str, Any], seeds: list[int],
                      base_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full set of config overrides for a run: the registry's (a ModelKey read from the model's scheduler
    config), then the user's, then per-image seeds."""
    spec = spec_of(name)
    model = base_config or {}
    registry = {k: model.get(v.key, v.default) if isinstance(v, ModelKey) else v for k, v in spec.overrides.items()}
    merged = {**registry, **dict(options)}
    if "noise_sampler_seed" in inspect.signature(spec.cls.__init__).parameters:
        merged.setdefault("noise_sampler_seed", list(seeds))
    return merged


def make_scheduler(name: str, base_config: Mapping[str, Any], options: Mapping[str, Any], seeds: list[int]):
    """A fresh scheduler for one run (they are stateful), built from the model's scheduler config."""
    spec = spec_of(name)
    return spec.cls.from_config(base_config, **scheduler_options(name, options, seeds, base_config))


def noise_sigma(scheduler) -> float:
    """The standard deviation pure noise starts at: init_noise_sigma, or 1 for a flow-matching scheduler."""
    return getattr(scheduler, "init_noise_sigma", 1.0)


def scale_input(scheduler, latents, t):
    """The latents as the model reads them at t: scale_model_input's, or as they are for a flow-matching scheduler."""
    scale = getattr(scheduler, "scale_model_input", None)
    return latents if scale is None else scale(latents, t)


def add_noise(scheduler, latents, noise, timesteps):
    """Latents noised to `timesteps` (one per latent): add_noise's sqrt(alpha) mixture, or for a flow-matching
    scheduler its scale_noise, sigma x noise + (1 - sigma) x latents at the begin index set before."""
    if hasattr(scheduler, "add_noise"):
        return scheduler.add_noise(latents, noise, timesteps)
    return scheduler.scale_noise(latents, timesteps, noise)


def step_kwargs(scheduler, generators: list) -> dict[str, Any]:
    """The per-image generators for schedulers whose step draws noise (ancestral, SDE), as diffusers passes them."""
    params = inspect.signature(scheduler.step).parameters
    return {"generator": generators} if "generator" in params else {}


def describe() -> str:
    """One line per registered scheduler: key, A1111 label, the kind of model it serves, class and overrides."""
    rows = []
    for key, spec in SCHEDULERS.items():
        extra = ", ".join(f"{k}={v}" for k, v in spec.overrides.items())
        row = f"{key:<20} {spec.label:<20} {spec.serves:<6} {spec.cls.__name__}"
        rows.append(row + (f" ({extra})" if extra else ""))
    return "\n".join(rows)
