"""The GPU path: bf16 training on the warehouse's CUDA device, resuming there, and running out of GPU
memory. Skipped without CUDA (CI has none); run on a GPU machine with

    pytest trainer/tests/test_cuda.py

The model is SmolLM2-135M's architecture and tokenizer with random weights (seeded): the test machine
may hold only the tokenizer and config, and what is checked here (dtype, device, falling loss, resume,
memory errors) does not depend on trained weights.
"""
from __future__ import annotations

import pytest
import torch

from trainer import TrainConfig, TrainingCancelled, TrainingHooks, train
from trainer.checkpoint import saved_step
from trainer.out_of_memory import TrainingOutOfMemory

from .conftest import ACKNOWLEDGEMENTS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Steps(TrainingHooks):
    def __init__(self, stop_at_checkpoint=None):
        self.steps, self.stop_at_checkpoint = [], stop_at_checkpoint  # (directory, step)

    def on_step(self, m):
        self.steps.append(m)

    def should_cancel(self):
        if self.stop_at_checkpoint is None:
            return False
        directory, step = self.stop_at_checkpoint
        return (saved_step(directory) or 0) >= step


@pytest.fixture(scope="module")
def random_smollm2(tokenizer_dir, tmp_path_factory):
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("cuda") / "smollm2-random"
    LlamaForCausalLM(AutoConfig.from_pretrained(str(tokenizer_dir))).save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(out))
    return out


def cuda_config(model_dir, out, **overrides) -> TrainConfig:
    values = dict(base_model_path=str(model_dir), output_dir=str(out), device="cuda:0", max_epochs=10,
                  learning_rate=3e-3, batch_size=4, adapter_check_prompts=0)
    return TrainConfig(**(values | overrides))


def test_training_runs_in_bf16_on_the_warehouse_gpu_and_learns(random_smollm2, tmp_path):
    torch.cuda.reset_peak_memory_stats()
    hooks = Steps()
    result = train(cuda_config(random_smollm2, tmp_path / "adapter"), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], hooks)
    assert torch.cuda.max_memory_allocated() > 200 * 2**20  # the model really was on the GPU
    first, last = hooks.steps[0].loss, hooks.steps[-1].loss
    assert last < first / 2, (first, last)
    assert result.validation_loss < first / 2
    print(f"\ncuda bf16: {len(hooks.steps)} steps, loss {first:.3f} -> {last:.3f}, "
          f"{sum(m.tokens_per_second for m in hooks.steps[2:]) / max(1, len(hooks.steps) - 2):.0f} tok/s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert weights and all(t.dtype in (torch.bfloat16, torch.float32) for t in weights.values())


def test_a_run_stopped_on_the_gpu_carries_on_from_its_checkpoint(random_smollm2, tmp_path):
    settings = dict(checkpoint_dir=str(tmp_path / "checkpoint"), checkpoint_interval_s=0)
    with pytest.raises(TrainingCancelled):
        train(cuda_config(random_smollm2, tmp_path / "first", **settings), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4],
              Steps(stop_at_checkpoint=(tmp_path / "checkpoint", 5)))
    hooks = Steps()
    result = train(cuda_config(random_smollm2, tmp_path / "adapter", **settings), ACKNOWLEDGEMENTS,
                   ACKNOWLEDGEMENTS[:4], hooks)
    assert result.resumed_from_step == 5
    assert hooks.steps[0].step == 6 and hooks.steps[-1].step == result.steps
    whole = Steps()
    train(cuda_config(random_smollm2, tmp_path / "whole"), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], whole)
    # bf16 GPU kernels are not bit-reproducible; the resumed run must still follow the same curve.
    assert hooks.steps[-1].loss == pytest.approx(whole.steps[-1].loss, rel=0.15, abs=0.05)


def test_running_out_of_gpu_memory_says_what_to_change(random_smollm2, tmp_path):
    free, total = torch.cuda.mem_get_info()
    # A cap a little above the bf16 weights: loading fits, a step of 32 long rows does not.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + 700 * 2**20) / total))
    try:
        rows = [("word " * 400 + str(i), "answer " * 400) for i in range(32)]
        with pytest.raises(TrainingOutOfMemory) as caught:
            train(cuda_config(random_smollm2, tmp_path / "adapter", batch_size=32, max_epochs=1), rows, rows[:2])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert str(caught.value).startswith("Training ran out of memory on the GPU (cuda:0) while ")
    assert "Try '{\"batch_size\": 16}' in the options" in str(caught.value)
