"""What a training run tells its caller, and what it asks: the hooks, the per-step metrics, the result.

Their own module because both sides of a distributed run use them: the ranks (train.py) and the launcher
that relays rank 0's reports to the caller's hooks (launch.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TrainingCancelled(Exception):
    """Raised when hooks.should_cancel() said so; nothing is written to output_dir."""


@dataclass
class StepMetrics:
    step: int  # 1-based optimizer step
    total_steps: int
    epoch: float  # fractional epoch reached after this step, e.g. 1.5
    loss: float  # mean loss over the completion tokens of this step's batches
    learning_rate: float  # LR used for this step
    tokens_per_second: float  # non-padding tokens of the batch / wall time of the step
    progress: float  # 0..1 over the whole run; reaches 1.0 on the last step
    eta_seconds: float  # time left at the run's average pace so far (evaluations included)


class TrainingHooks:
    """Override what you need; every default does nothing."""

    def on_phase(self, phase: str) -> None:  # "loading", "preparing", "training", "evaluating", "checking", "saving"
        pass

    def on_step(self, m: StepMetrics) -> None:
        pass

    def on_eval(self, epoch: float, validation_loss: float, step: int | None = None) -> None:
        pass

    def on_resume(self, step: int) -> None:
        """Training carries on from a checkpoint at this step: forget metrics reported after it."""

    def should_cancel(self) -> bool:
        return False

    def on_launch(self, join: dict[str, Any]) -> None:
        """A run over several hosts (config.nodes > 1) waits for the others: each joins by running
        launch.join_command(join, its devices). Called once, before any rank has started training."""

    def on_ranks(self, ranks: list[dict[str, Any]]) -> None:
        """Every rank of a distributed run has started: [{"rank", "host", "pid"}, ...], by rank."""


@dataclass
class TrainResult:
    training_loss: float  # token-weighted mean loss over the last epoch
    validation_loss: float | None  # best epoch's validation loss; None without validation rows
    epochs: int  # epochs trained
    best_epoch: float  # epoch (fractional for a step-interval evaluation) whose adapter was saved
    trained_tokens: int  # (prompt + completion tokens of the training rows) x epochs
    steps: int
    template: str  # "model" or "fallback"
    history: list[dict[str, Any]] = field(default_factory=list)  # one asdict(StepMetrics) per step
    val_history: list[dict[str, Any]] = field(default_factory=list)  # {"epoch", "step", "validation_loss"} per evaluation
    adapter_check: dict[str, Any] | None = None  # see adapter.check(); None when skipped
    resumed_from_step: int | None = None  # the checkpoint's step when this run carried on from one
