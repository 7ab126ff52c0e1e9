"""A run stopped mid-way carries on from its checkpoint and ends where an uninterrupted run ends."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from trainer import TrainingCancelled, train
from trainer.checkpoint import saved_step

from .conftest import ACKNOWLEDGEMENTS, TICKETS
from .test_train import Recorder, config


class ResumeRecorder(Recorder):
    def __init__(self, cancel_after_steps=None, stop_at_checkpoint=None):
        super().__init__(cancel_after_steps)
        self.stop_at_checkpoint = stop_at_checkpoint  # (directory, step): stop once that checkpoint exists
        self.resumed_at = None

    def on_resume(self, step):
        self.resumed_at = step

    def should_cancel(self):
        if self.stop_at_checkpoint is not None:
            directory, step = self.stop_at_checkpoint
            return (saved_step(directory) or 0) >= step
        return super().should_cancel()


def adapter_weights(out):
    return load_file(str(out / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "adapter"
    result = train(config(tiny_model_dir, out, max_epochs=4, eval_steps=2, adapter_check_prompts=0),
                   ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4])
    return out, result


# 12 rows in batches of 4: epochs end at steps 3, 6, 9, 12; eval_steps=2 adds evaluations at 2, 4, 8, 10.
# The first run stops (as if killed) as soon as the checkpoint of the given step is on disk.
@pytest.mark.parametrize("stopped_after", [
    1,  # mid-epoch
    2,  # right after an eval_steps evaluation
    3,  # at an epoch end, its evaluation done
    5,  # mid-epoch, later
])
def test_a_stopped_run_carries_on_from_its_checkpoint_and_ends_like_an_uninterrupted_one(
        tiny_model_dir, tmp_path, uninterrupted, stopped_after):
    whole_out, whole = uninterrupted
    checkpoints = tmp_path / "checkpoint"
    settings = dict(max_epochs=4, eval_steps=2, adapter_check_prompts=0, checkpoint_dir=str(checkpoints),
                    checkpoint_interval_s=0)
    with pytest.raises(TrainingCancelled):  # stands in for a killed worker: the process state is gone
        train(config(tiny_model_dir, tmp_path / "first", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
              ResumeRecorder(stop_at_checkpoint=(checkpoints, stopped_after)))
    assert saved_step(checkpoints) == stopped_after
    assert not (tmp_path / "first").exists()

    hooks = ResumeRecorder()
    result = train(config(tiny_model_dir, tmp_path / "adapter", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
                   hooks)

    assert hooks.resumed_at == stopped_after == result.resumed_from_step
    assert [m.step for m in hooks.steps] == list(range(stopped_after + 1, whole.steps + 1))
    assert [h["step"] for h in result.history] == list(range(1, whole.steps + 1))
    assert [round(h["loss"], 4) for h in result.history] == [round(h["loss"], 4) for h in whole.history]
    assert [(v["step"], round(v["validation_loss"], 4)) for v in result.val_history] == \
        [(v["step"], round(v["validation_loss"], 4)) for v in whole.val_history]
    assert result.best_epoch == whole.best_epoch
    ours, theirs = adapter_weights(tmp_path / "adapter"), adapter_weights(whole_out)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert (ours[name] - theirs[name]).abs().max() < 1e-5, name
    assert not checkpoints.exists(), "a finished run needs no checkpoint"


def test_a_checkpoint_of_other_data_is_not_resumed(tiny_model_dir, tmp_path):
    checkpoints = tmp_path / "checkpoint"
    settings = dict(max_epochs=2, adapter_check_prompts=0, checkpoint_dir=str(checkpoints), checkpoint_interval_s=0)
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "first", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
              ResumeRecorder(stop_at_checkpoint=(checkpoints, 2)))
    assert saved_step(checkpoints) == 2

    other_data = [(prompt, label) for prompt, label in TICKETS]
    hooks = ResumeRecorder()
    result = train(config(tiny_model_dir, tmp_path / "adapter", **settings), other_data, other_data[:4], hooks)
    assert hooks.resumed_at is None and result.resumed_from_step is None
    assert hooks.steps[0].step == 1


def test_checkpoints_are_written_at_most_every_interval(tiny_model_dir, tmp_path):
    checkpoints = tmp_path / "checkpoint"
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "out", max_epochs=3, adapter_check_prompts=0,
                     checkpoint_dir=str(checkpoints), checkpoint_interval_s=3600),
              ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], ResumeRecorder(cancel_after_steps=5))
    assert saved_step(checkpoints) is None  # an hour had not passed: nothing written


def test_the_checkpoint_summary_is_readable_without_torch(tiny_model_dir, tmp_path):
    checkpoints = tmp_path / "checkpoint"
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "out", max_epochs=2, adapter_check_prompts=0,
                     checkpoint_dir=str(checkpoints), checkpoint_interval_s=0),
              ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], ResumeRecorder(stop_at_checkpoint=(checkpoints, 1)))
    assert json.loads((checkpoints / "checkpoint.json").read_text()) == {"step": 1, "total_steps": 6,
                                                                         "batches_per_step": 1}
