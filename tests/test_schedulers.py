"""The scheduler registry: names, A1111 aliases, fresh instances, the listing."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.common.errors import UserError
from pipeline.engine.schedulers import SCHEDULERS, make_scheduler, resolve
from pipeline.lab.fixtures.tiny_model import sd_scheduler

REQUIRED = ["pndm", "lms", "ddim", "euler", "euler_a", "heun", "dpm2", "dpm2_a", "dpmpp_2m", "dpmpp_2m_karras",
            "dpmpp_2m_sde", "dpmpp_sde", "unipc", "deis", "ddpm", "lcm"]


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(SCHEDULERS)


@pytest.mark.parametrize("label,key", [("DPM++ 2M Karras", "dpmpp_2m_karras"), ("Euler a", "euler_a"),
                                       ("PLMS", "pndm"), ("dpm++ 2m sde", "dpmpp_2m_sde"), ("UniPC", "unipc"),
                                       ("DPM2 a", "dpm2_a"), ("lms", "lms")])
def test_a1111_labels_are_aliases(label, key):
    assert resolve(label) == key


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError, match="must be one of pndm, lms"):
        resolve("Euler b")


def test_each_run_gets_a_fresh_scheduler_with_the_overrides():
    base = sd_scheduler().config
    first = make_scheduler("dpmpp_2m_karras", base, {}, [0])
    second = make_scheduler("dpmpp_2m_karras", base, {"solver_order": 3}, [0])
    assert first is not second and first.config.use_karras_sigmas and second.config.solver_order == 3
    assert first.config.beta_schedule == "scaled_linear"  # carried over from the model's config


def test_list_schedulers_command():
    script = Path(__file__).resolve().parents[1] / "scripts" / "generate.py"
    out = subprocess.run([sys.executable, str(script), "--list-schedulers"], capture_output=True, text=True,
                         check=True).stdout
    for key, spec in SCHEDULERS.items():
        assert key in out and spec.label in out and spec.cls.__name__ in out
