"""Data parallel training under DDP, launched by torchrun: two "hosts" on this machine (two torchrun agents
meeting at a c10d rendezvous over loopback, gloo, one CPU rank each), the same code path NCCL runs on GPUs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from safetensors.torch import load_file

from trainer import TrainingCancelled, train
from trainer.checkpoint import saved_batches_per_step, saved_step
from trainer.distributed import parse_devices
from trainer.launch import RankFailed, join_command

from .conftest import ACKNOWLEDGEMENTS
from .test_resume import ResumeRecorder
from .test_train import config

# 12 rows in batches of 4 are 3 batches an epoch; 2 batches a step: 2 steps an epoch, the second with one
# batch (so one rank runs a step with no batch of its own). 4 epochs: 8 steps.
SETTINGS = dict(max_epochs=4, batches_per_step=2, num_threads=1, adapter_check_prompts=0)
TWO_HOSTS = dict(nodes=2, join_timeout_s=120)


class SecondHost(ResumeRecorder):
    """The caller's hooks, and the other host's worker: joins the run when it is announced."""

    def __init__(self, kill_rank_after_steps=None, **kwargs):
        super().__init__(**kwargs)
        self.kill_rank_after_steps = kill_rank_after_steps
        self.agent = None
        self.ranks = []

    def on_launch(self, join):
        self.agent = subprocess.Popen(join_command(join, ["cpu"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def on_ranks(self, ranks):
        self.ranks = ranks

    def on_step(self, m):
        super().on_step(m)
        if m.step == self.kill_rank_after_steps:
            os.kill(self.ranks[1]["pid"], signal.SIGKILL)

    def agent_status(self, timeout=60):
        return self.agent.wait(timeout=timeout)


@pytest.fixture
def second_host():
    hooks = []

    def make(**kwargs):
        hooks.append(SecondHost(**kwargs))
        return hooks[-1]

    yield make
    for h in hooks:
        if h.agent is not None and h.agent.poll() is None:
            h.agent.kill()
            h.agent.wait()


def weights(directory):
    return load_file(str(directory / "adapter_model.safetensors"))


def assert_same_adapter(ours, theirs, tolerance=1e-4):
    a, b = weights(ours), weights(theirs)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < tolerance, worst


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory):
    """The reference: one process accumulating the same two batches per step."""
    out = tmp_path_factory.mktemp("one") / "adapter"
    hooks = ResumeRecorder()
    result = train(config(tiny_model_dir, out, **SETTINGS), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], hooks)
    return out, result, hooks


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


def test_two_hosts_train_the_adapter_one_process_trains_over_the_same_batches(tiny_model_dir, tmp_path, one_process,
                                                                             second_host):
    one_out, one, one_hooks = one_process
    out = tmp_path / "adapter"
    hooks = second_host()
    result = train(config(tiny_model_dir, out, **SETTINGS, **TWO_HOSTS), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], hooks)
    assert hooks.agent_status() == 0
    assert [r["rank"] for r in hooks.ranks] == [0, 1]
    assert result.steps == one.steps == 8 and [m.step for m in hooks.steps] == list(range(1, 9))  # reported once
    assert [round(m.loss, 4) for m in hooks.steps] == [round(m.loss, 4) for m in one_hooks.steps]
    assert [round(v, 4) for _, v in hooks.evals] == [round(v, 4) for _, v in one_hooks.evals]
    assert hooks.phases[:3] == ["loading", "preparing", "training"] and hooks.phases[-1] == "saving"
    assert_same_adapter(out, one_out)
    recorded = json.loads((out / "studio_adapter.json").read_text())["hyperparameters"]
    assert (recorded["nodes"], recorded["batches_per_step"]) == (2, 2)


def test_cancelling_stops_every_rank_on_every_host(tiny_model_dir, tmp_path, second_host):
    hooks = second_host(cancel_after_steps=3)
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "adapter", **SETTINGS, **TWO_HOSTS), ACKNOWLEDGEMENTS,
              ACKNOWLEDGEMENTS[:4], hooks)
    started = time.monotonic()
    assert hooks.agent_status(timeout=30) == 0, "the other host's rank did not end with the cancel"
    assert time.monotonic() - started < 30
    assert [m.step for m in hooks.steps] == [1, 2, 3]
    assert not (tmp_path / "adapter").exists()


def test_a_killed_rank_fails_the_run_saying_which(tiny_model_dir, tmp_path, second_host):
    hooks = second_host(kill_rank_after_steps=2)
    started = time.monotonic()
    with pytest.raises(RankFailed) as failed:
        train(config(tiny_model_dir, tmp_path / "adapter", **SETTINGS, **TWO_HOSTS, checkpoint_dir=str(tmp_path / "c"),
                     checkpoint_interval_s=0), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], hooks)
    pid, host = hooks.ranks[1]["pid"], hooks.ranks[1]["host"]
    assert str(failed.value) == (f"Training stopped: rank 1 of 2 (process {pid} on {host}) exited unexpectedly "
                                 "(killed, or out of memory), so the other ranks stopped too.")
    assert hooks.agent_status(timeout=60) is not None  # the other host's agent is gone too
    assert time.monotonic() - started < 120
    assert saved_step(tmp_path / "c") in (1, 2), "the checkpoint a job carries on from is kept"
    assert not (tmp_path / "adapter").exists()


def test_a_run_carries_on_from_a_checkpoint_on_another_number_of_ranks(tiny_model_dir, tmp_path, one_process):
    """Two ranks on one host (torchrun, two local processes) stop at step 3; one process carries on to the end,
    with the same steps, and ends with the adapter an uninterrupted run ends with."""
    one_out, one, _ = one_process
    checkpoints = tmp_path / "checkpoint"
    settings = SETTINGS | dict(checkpoint_dir=str(checkpoints), checkpoint_interval_s=0)
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "first", devices=["cpu", "cpu"], **settings), ACKNOWLEDGEMENTS,
              ACKNOWLEDGEMENTS[:4], ResumeRecorder(stop_at_checkpoint=(checkpoints, 3)))
    assert saved_step(checkpoints) == 3 and saved_batches_per_step(checkpoints) == 2

    hooks = ResumeRecorder()
    result = train(config(tiny_model_dir, tmp_path / "adapter", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
                   hooks)
    assert hooks.resumed_at == 3 == result.resumed_from_step
    assert [m.step for m in hooks.steps] == list(range(4, 9))
    assert [round(h["loss"], 4) for h in result.history] == [round(h["loss"], 4) for h in one.history]
    assert_same_adapter(tmp_path / "adapter", one_out)


def test_a_host_that_never_joins_fails_the_run_once_the_join_timeout_passed(tiny_model_dir, tmp_path):
    started = time.monotonic()
    with pytest.raises(RankFailed, match=r"^Training could not start: 1 other host\(s\) were to join at 127\.0\.0\.1, "
                                         r"but not all did within 5 s\.$"):
        train(config(tiny_model_dir, tmp_path / "adapter", **SETTINGS, nodes=2, join_timeout_s=5), ACKNOWLEDGEMENTS,
              ACKNOWLEDGEMENTS[:4], ResumeRecorder())
    assert time.monotonic() - started < 60


def test_a_cancel_while_waiting_for_the_other_hosts_stops_the_wait(tiny_model_dir, tmp_path):
    started = time.monotonic()
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, tmp_path / "adapter", **SETTINGS, nodes=2), ACKNOWLEDGEMENTS,
              ACKNOWLEDGEMENTS[:4], ResumeRecorder(cancel_after_steps=0))
    assert time.monotonic() - started < 30  # not the 600 s join timeout
