"""The flow stage's cheaper taught step and its batch mix (issue 29, item 7): the teacher answers only the noisiest
`flow.teacher_share` of each batch, and `flow.two_shape_batch` draws that share of a batch from two-shape scenes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.errors import UserError
from pipeline.lab.shapes.flow_models import projected_encoder
from pipeline.lab.shapes.flow_train import flow_loss, scene_draw
from pipeline.lab.shapes.models import build_text_encoder
from pipeline.lab.shapes.train_config import load_config
from pipeline.lab.shapes.vocab import save_tokenizer
from pipeline.lab.shapes.world import make_scenes

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "train-tiny.yaml")


class Recorder:
    """A stand-in transformer and teacher: zero velocities, and the sigmas each was asked at."""

    def __init__(self) -> None:
        self.model_sigmas, self.taught_sigmas = None, None

    def __call__(self, hidden_states, timestep, **_):
        self.model_sigmas = timestep / 1000
        return (torch.zeros_like(hidden_states),)

    def velocity(self, noisy, sigma, ids):
        assert len(noisy) == len(sigma) == len(ids)
        self.taught_sigmas = sigma
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


def test_the_batch_keys_are_shares() -> None:
    for key in ("flow.teacher_share", "flow.two_shape_batch"):
        with pytest.raises(UserError, match=key):
            load_config(TINY, [f"{key}=1.5"])
