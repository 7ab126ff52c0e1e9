"""Data parallel training: two ranks on the CPU over gloo, the same code path NCCL runs on several GPUs."""
from __future__ import annotations

import json
import time

import pytest

from trainer import TrainingCancelled, train
from trainer.checkpoint import saved_step
from trainer.distributed import parse_devices

from .conftest import ACKNOWLEDGEMENTS, REPLY
from .test_train import Recorder, config, greedy_answer


@pytest.mark.parametrize("spec, devices", [
    ("cpu", ["cpu"]), ("cuda", ["cuda:0"]), ("cuda:1", ["cuda:1"]), ("cuda:0-3", ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
    ("cuda:0,2", ["cuda:0", "cuda:2"]), (" CUDA:2-3 ", ["cuda:2", "cuda:3"]),
])
def test_device_lists(spec, devices):
    assert parse_devices(spec) == devices


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:3-1", "cuda:0,0", "cuda:a", "tpu:0"])
def test_device_lists_that_make_no_sense_are_refused(spec):
    with pytest.raises(ValueError):
        parse_devices(spec)


def test_two_ranks_train_one_adapter_reported_once(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "adapter"
    hooks = Recorder()
    # 12 rows in batches of 4 are 3 batches an epoch: 2 steps over 2 ranks (the second with one batch).
    result = train(config(tiny_model_dir, out, devices=["cpu", "cpu"], num_threads=1), ACKNOWLEDGEMENTS,
                   ACKNOWLEDGEMENTS[:4], hooks)
    assert result.steps == 20 and [m.step for m in hooks.steps] == list(range(1, 21))
    assert hooks.steps[-1].loss < hooks.steps[0].loss / 5
    assert json.loads((out / "studio_adapter.json").read_text())["hyperparameters"]["devices"] == ["cpu", "cpu"]
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out))
    assert greedy_answer(model, tokenizer, "Classify this support ticket: my order is late.") == REPLY


def test_cancelling_stops_every_rank_and_a_second_run_carries_on_from_the_checkpoint(tiny_model_dir, tmp_path):
    settings = dict(devices=["cpu", "cpu"], num_threads=1, max_epochs=4, adapter_check_prompts=0,
                    checkpoint_dir=str(tmp_path / "checkpoint"), checkpoint_interval_s=0)
    started = time.monotonic()
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "first", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
              Recorder(cancel_after_steps=3))
    assert time.monotonic() - started < 60, "the other rank kept the run waiting"
    assert saved_step(tmp_path / "checkpoint") == 2  # step 3's checkpoint is where the cancel was noticed
    hooks = Recorder()
    result = train(config(tiny_model_dir, tmp_path / "adapter", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
                   hooks)
    assert result.resumed_from_step == 2 and [m.step for m in hooks.steps] == list(range(3, 9))
