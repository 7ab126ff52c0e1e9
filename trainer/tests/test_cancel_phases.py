"""CANCEL arriving in any phase of a run: train() stops before the next phase and writes no adapter.

The hooks turn should_cancel() True the moment a given phase is entered, as a CANCEL arriving while
the trainer is in that phase would; the trainer must notice before it moves on to the next phase.
"""
from __future__ import annotations

import pytest

from trainer import TrainConfig, TrainingCancelled, TrainingHooks, train

from .conftest import ACKNOWLEDGEMENTS

TINY_LR = 1e-2
PHASES = ["loading", "preparing", "training", "evaluating", "checking", "saving"]
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", "studio_adapter.json")


class CancelIn(TrainingHooks):
    """Cancelled from the moment `phase` is entered; records every phase and step."""

    def __init__(self, phase: str):
        self.phase = phase
        self.phases: list[str] = []
        self.steps_at_cancel: int | None = None
        self.steps = 0

    def on_phase(self, phase):
        self.phases.append(phase)
        if phase == self.phase and self.steps_at_cancel is None:
            self.steps_at_cancel = self.steps

    def on_step(self, m):
        self.steps += 1

    def should_cancel(self):
        return self.steps_at_cancel is not None


def test_the_phases_are_the_ones_this_file_covers(tiny_model_dir, tmp_path):
    """Every phase train() reports is covered below (a new phase needs a case of its own)."""
    hooks = CancelIn("none")
    train(TrainConfig(base_model_path=str(tiny_model_dir), output_dir=str(tmp_path / "adapter"), max_epochs=1,
                      learning_rate=TINY_LR, batch_size=4, adapter_check_tokens=4),
          ACKNOWLEDGEMENTS[:8], ACKNOWLEDGEMENTS[8:10], hooks)
    assert set(hooks.phases) == set(PHASES), hooks.phases


@pytest.mark.parametrize("phase", [
    *PHASES,
])
def test_cancel_in_each_phase_stops_before_the_next_and_leaves_no_adapter(phase, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    hooks = CancelIn(phase)
    # Two epochs with validation rows: every phase is entered, and "evaluating" is followed by more training.
    config = TrainConfig(base_model_path=str(tiny_model_dir), output_dir=str(out), max_epochs=2,
                         learning_rate=TINY_LR, batch_size=4, adapter_check_tokens=4)
    with pytest.raises(TrainingCancelled):
        train(config, ACKNOWLEDGEMENTS[:8], ACKNOWLEDGEMENTS[8:10], hooks)
    assert hooks.phases[-1] == phase, f"the run went on to {hooks.phases[-1]!r} after a CANCEL in {phase!r}"
    assert hooks.steps == hooks.steps_at_cancel, "training steps were taken after the CANCEL"
    assert not out.exists() or not any((out / name).exists() for name in ADAPTER_FILES), sorted(out.iterdir())
