"""Self-contained LoRA fine-tuning for the studio: data preparation (prepare.py) and training (train.py).

Django-free on purpose: a worker process imports it, trains, and hands back a directory.
"""
import os

# Must happen before torch is imported anywhere in the process: with the default (ACTIVE) policy OpenMP
# threads spin between parallel regions and fight over the 2 CPU cores; PASSIVE measured 2.5x faster
# training steps there. setdefault so an operator's explicit choice still wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import FINETUNE_OPTIONS, TrainConfig  # noqa: E402
from .prepare import DataError, auto_epochs, check_rows, encode_rows, epochs_to_train, split_validation  # noqa: E402
from .train import StepMetrics, TrainingCancelled, TrainingHooks, TrainResult, train  # noqa: E402

__all__ = [
    "FINETUNE_OPTIONS", "DataError", "StepMetrics", "TrainConfig", "TrainResult", "TrainingCancelled", "TrainingHooks",
    "auto_epochs", "check_rows", "encode_rows", "epochs_to_train", "split_validation", "train",
]
