"""What a run is configured with: FINETUNE's options as TrainConfig fields, the epochs it trains, and its
hyperparameters as studio_adapter.json records them and as a checkpoint's fingerprint hashes them."""
from __future__ import annotations

from dataclasses import fields

from trainer.checkpoint import fingerprint
from trainer.config import FINETUNE_OPTIONS, HYPERPARAMETERS, TrainConfig, hyperparameters
from trainer.prepare import auto_epochs, epochs_to_train

FIELDS = {f.name for f in fields(TrainConfig)}
ROWS, VALIDATION = [("a", "b"), ("c", "d")], [("e", "f")]
# Every setting a hyperparameter, none of them the default.
CHOSEN = dict(learning_rate=1e-3, batch_size=4, warmup_ratio=0.2, weight_decay=0.01, max_grad_norm=0.5, eval_steps=7,
              seed=11, lora_r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["v_proj", "q_proj"],
              devices=["cuda:0", "cuda:1"], max_prompt_tokens=100, max_completion_tokens=50)


def config(**chosen) -> TrainConfig:
    return TrainConfig(base_model_path="/nonexistent/base", output_dir="/nonexistent/out", **chosen)


def test_every_finetune_option_sets_the_train_config_field_of_its_name():
    assert set(FINETUNE_OPTIONS) <= FIELDS


def test_the_chosen_epochs_win_and_none_means_the_automatic_rule():
    assert epochs_to_train(3, 12) == 3
    assert epochs_to_train(None, 12) == auto_epochs(12) == 9
    assert epochs_to_train(None, 1000) == 1


def test_every_hyperparameter_is_a_train_config_field():
    assert set(HYPERPARAMETERS) <= FIELDS


def test_the_fingerprint_is_the_one_checkpoints_on_disk_were_written_with():
    # Computed before the hyperparameters were listed once (HYPERPARAMETERS): a checkpoint saved then resumes.
    default = fingerprint(config(), ROWS, VALIDATION, 3)
    assert default == "332faabea739a46619b196456c1f9b2bbac6f4d4f29eb787d3780b3448f35637"
    chosen = fingerprint(config(**CHOSEN), ROWS, VALIDATION, 5)
    assert chosen == "3f2f509e595d8d14b11f3d320bf8b39b82f7dfd73fe392ab38d050a082ec0690"


def test_the_target_modules_order_and_the_row_limits_leave_the_fingerprint_alone():
    same = fingerprint(config(**CHOSEN), ROWS, VALIDATION, 5)
    assert fingerprint(config(**{**CHOSEN, "target_modules": ["q_proj", "v_proj"]}), ROWS, VALIDATION, 5) == same
    limits = {"max_prompt_tokens": 7, "max_completion_tokens": 3}
    assert fingerprint(config(**{**CHOSEN, **limits}), ROWS, VALIDATION, 5) == same
    assert fingerprint(config(**{**CHOSEN, "max_grad_norm": 0.25}), ROWS, VALIDATION, 5) != same


def test_the_fingerprint_counts_batches_per_step_not_ranks_so_a_run_carries_on_with_other_ranks():
    two_gpus = fingerprint(config(**CHOSEN), ROWS, VALIDATION, 5)  # two ranks: two batches a step
    assert fingerprint(config(**{**CHOSEN, "devices": None, "batches_per_step": 2}), ROWS, VALIDATION, 5) == two_gpus
    assert fingerprint(config(**{**CHOSEN, "devices": None, "nodes": 2}), ROWS, VALIDATION, 5) == two_gpus
    assert fingerprint(config(**{**CHOSEN, "batches_per_step": 4}), ROWS, VALIDATION, 5) != two_gpus


def test_studio_adapter_json_records_the_hyperparameters_it_always_recorded():
    assert hyperparameters(config(**CHOSEN)) == {
        "learning_rate": 1e-3, "batch_size": 4, "warmup_ratio": 0.2, "weight_decay": 0.01, "lora_r": 8,
        "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["v_proj", "q_proj"], "max_prompt_tokens": 100,
        "max_completion_tokens": 50, "seed": 11, "eval_steps": 7,
    }
