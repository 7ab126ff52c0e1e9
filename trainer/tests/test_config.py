"""What a run is configured with: FINETUNE's options as TrainConfig fields, and the epochs it trains."""
from __future__ import annotations

from dataclasses import fields

from trainer.config import FINETUNE_OPTIONS, TrainConfig
from trainer.prepare import auto_epochs, epochs_to_train


def test_every_finetune_option_sets_the_train_config_field_of_its_name():
    assert set(FINETUNE_OPTIONS) <= {f.name for f in fields(TrainConfig)}


def test_the_chosen_epochs_win_and_none_means_the_automatic_rule():
    assert epochs_to_train(3, 12) == 3
    assert epochs_to_train(None, 12) == auto_epochs(12) == 9
    assert epochs_to_train(None, 1000) == 1
