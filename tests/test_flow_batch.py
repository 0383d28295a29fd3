"""The flow stage's cheaper taught step and its batch mix (issue 29, item 7): the teacher answers only the noisiest
`flow.teacher_share` of each batch, or a pool of `flow.teacher_pool` samples once, from which each step draws; and
`flow.two_shape_batch` draws that share of a batch from two-shape scenes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.errors import UserError
from pipeline.lab.shapes.flow_models import projected_encoder
from pipeline.lab.shapes.flow_samples import scene_draw, teacher_pool
from pipeline.lab.shapes.flow_train import flow_loss
from pipeline.lab.shapes.models import build_text_encoder
from pipeline.lab.shapes.train_config import load_config
from pipeline.lab.shapes.vocab import save_tokenizer
from pipeline.lab.shapes.world import make_scenes

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "train-tiny.yaml")


class Recorder:
    """A stand-in transformer and teacher: zero velocities, and the sigmas each was asked at."""

    def __init__(self) -> None:
        self.model_sigmas, self.taught_sigmas, self.calls = None, None, 0

    def __call__(self, hidden_states, timestep, **_):
        self.model_sigmas = timestep / 1000
        return (torch.zeros_like(hidden_states),)

    def velocity(self, noisy, sigma, ids):
        assert len(noisy) == len(sigma) == len(ids)
        self.taught_sigmas, self.calls = sigma, self.calls + 1
        return torch.zeros_like(noisy), torch.ones(len(sigma), dtype=torch.bool)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    tokenizer = save_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    config = load_config(TINY, ["flow.batch_size=16"])
    encoder = projected_encoder(build_text_encoder(config.text, len(tokenizer)).eval())
    scenes = make_scenes(0, 40, 0.4)
    return config, tokenizer, encoder, scenes, torch.randn(40, 4, 16, 16)


@pytest.mark.parametrize("share, taught", [(1.0, 16), (0.25, 4), (0.5, 8)])
def test_the_teacher_answers_the_noisiest_share_of_the_batch(parts, share: float, taught: int) -> None:
    config, tokenizer, encoder, scenes, latents = parts
    config.flow.teacher_share = share
    recorder = Recorder()
    flow_loss(recorder, encoder, tokenizer, latents, 1.0, scenes, config, 3, recorder)
    expected = recorder.model_sigmas.sort(descending=True).values[:taught]
    assert torch.allclose(recorder.taught_sigmas, expected)


def test_the_untaught_rows_keep_the_datas_target(parts) -> None:
    config, tokenizer, encoder, scenes, latents = parts
    losses = {}
    for share in (0.0, 0.5, 1.0):  # a zero prediction: the loss is the targets' mean square; taught rows are zero
        config.flow.teacher_share = share
        losses[share] = flow_loss(Recorder(), encoder, tokenizer, latents, 1.0, scenes, config, 3, Recorder()).item()
    assert losses[1.0] == 0 and 0 < losses[0.5] < losses[0.0]


def test_two_shape_batch_draws_its_share_from_the_two_shape_scenes() -> None:
    scenes = make_scenes(0, 200, 0.3)
    assert scene_draw(scenes, 0.0) is None
    picks = scene_draw(scenes, 0.6)(np.random.default_rng(0), 64)
    assert len(picks) == 64 and sum(len(scenes[i].shapes) == 2 for i in picks) == round(0.6 * 64)
    only_one = [scene for scene in scenes if len(scene.shapes) == 1]
    with pytest.raises(UserError, match="flow.two_shape_batch"):
        scene_draw(only_one, 0.5)


def test_the_pool_is_taught_once_kept_for_a_resumed_run_and_drawn_from(parts, tmp_path) -> None:
    config, tokenizer, encoder, scenes, latents = parts
    config.flow.teacher_share, config.flow.teacher_pool = 1.0, 40
    teacher, path = Recorder(), tmp_path / "pool.safetensors"
    pool = teacher_pool(teacher, tokenizer, latents, 1.0, scenes, config, None, path)
    assert teacher.calls == 3 and len(pool["sigma"]) == 40 and not pool["target"].any()  # 3 batches of 16, all taught
    again = teacher_pool(teacher, tokenizer, latents, 1.0, scenes, config, None, path)
    assert teacher.calls == 3 and all(torch.equal(pool[key], again[key]) for key in pool)
    model = Recorder()
    assert flow_loss(model, encoder, tokenizer, latents, 1.0, scenes, config, 5, pool=pool).item() == 0
    pooled = set((pool["sigma"] * 1000 / 1000).tolist())  # the model is asked at timestep sigma * 1000
    assert len(model.model_sigmas) == 16 and set(model.model_sigmas.tolist()) <= pooled
    config.flow.teacher_pool = 0
    assert teacher_pool(teacher, tokenizer, latents, 1.0, scenes, config, None, path) is None


def test_the_batch_keys_are_checked() -> None:
    for key in ("flow.teacher_share", "flow.two_shape_batch"):
        with pytest.raises(UserError, match=key):
            load_config(TINY, [f"{key}=1.5"])
    for wrong in (["flow.teacher_pool=-1"], ["flow.teacher_pool=100", "flow.teacher=0"]):
        with pytest.raises(UserError, match="flow.teacher_pool"):
            load_config(TINY, wrong)
