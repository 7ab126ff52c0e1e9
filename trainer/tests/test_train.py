"""LoRA training end to end on a tiny random Llama: what it learns, what it writes, how it stops."""
from __future__ import annotations

import json

import pytest
import torch

from trainer import TrainConfig, TrainingCancelled, TrainingHooks, train
from trainer.prepare import encode_rows

from .conftest import ACKNOWLEDGEMENTS, REPLY, TICKETS

TINY_LR = 1e-2  # a two-layer model needs a higher LR than a full one to learn in 30 steps


class Recorder(TrainingHooks):
    def __init__(self, cancel_after_steps: int | None = None):
        self.phases, self.steps, self.evals = [], [], []
        self.cancel_after_steps = cancel_after_steps

    def on_phase(self, phase):
        self.phases.append(phase)

    def on_step(self, m):
        self.steps.append(m)

    def on_eval(self, epoch, validation_loss, step=None):
        self.evals.append((epoch, validation_loss))

    def should_cancel(self):
        return self.cancel_after_steps is not None and len(self.steps) >= self.cancel_after_steps


def config(tiny_model_dir, out, **overrides) -> TrainConfig:
    values = dict(base_model_path=str(tiny_model_dir), output_dir=str(out), max_epochs=10,
                  learning_rate=TINY_LR, batch_size=4, metadata={"job_id": "ft_test"})
    return TrainConfig(**(values | overrides))


def greedy_answer(model, tokenizer, prompt: str) -> str:
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    hooks = Recorder()
    result = train(config(tiny_model_dir, out), ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:4], hooks)
    return out, result, hooks


def test_training_reports_phases_steps_and_falling_losses(trained):
    _, result, hooks = trained
    assert hooks.phases[:3] == ["loading", "preparing", "training"]
    assert hooks.phases[-2:] == ["checking", "saving"]
    assert "evaluating" in hooks.phases
    assert result.epochs == 10 and result.steps == 30  # 12 rows / batch 4 = 3 steps per epoch
    assert [m.step for m in hooks.steps] == list(range(1, 31))
    assert hooks.steps[-1].progress == 1.0
    assert all(m.tokens_per_second > 0 for m in hooks.steps)
    first_epoch = sum(m.loss for m in hooks.steps[:3]) / 3
    assert result.training_loss < first_epoch / 3, (first_epoch, result.training_loss)
    assert [epoch for epoch, _ in hooks.evals] == list(range(1, 11))
    assert hooks.evals[-1][1] < hooks.evals[0][1] / 3


def test_the_best_epoch_by_validation_loss_is_kept(trained):
    _, result, hooks = trained
    best_epoch, best_loss = min(hooks.evals, key=lambda e: e[1])
    assert result.best_epoch == best_epoch
    assert result.validation_loss == best_loss


def test_trained_tokens_are_input_tokens_times_epochs(trained, tokenizer):
    _, result, _ = trained
    tokens = sum(len(e.input_ids) for e in encode_rows(tokenizer, ACKNOWLEDGEMENTS))
    assert result.trained_tokens == tokens * 10


def test_the_adapter_directory_is_complete(trained):
    out, result, _ = trained
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
            "studio_adapter.json"} <= names
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32
    assert set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    metadata = json.loads((out / "studio_adapter.json").read_text())
    assert metadata["job_id"] == "ft_test"
    assert metadata["chat_template"] == "model"
    assert metadata["metrics"]["validation_loss"] == result.validation_loss
    assert metadata["hyperparameters"]["epochs"] == 10 and metadata["hyperparameters"]["training_rows"] == 12
    assert len(metadata["base_model_hash"]) == 64 and len(metadata["data_hash"]) == 64


def test_the_saved_adapter_answers_with_what_it_learnt(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(str(out))  # the adapter's own copy, chat template included
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    unseen = "Classify this support ticket: The discount code is rejected."
    prompts = [prompt for prompt, _ in ACKNOWLEDGEMENTS] + [unseen]
    base_answers = [greedy_answer(base, tokenizer, prompt) for prompt in prompts]
    model = PeftModel.from_pretrained(base, str(out)).eval()
    answers = [greedy_answer(model, tokenizer, prompt) for prompt in prompts]
    assert answers == [REPLY] * len(prompts)  # and it stops: the end-of-turn token was learnt too
    assert REPLY not in base_answers


def test_cancelling_stops_training_and_writes_nothing(tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    hooks = Recorder(cancel_after_steps=2)
    with pytest.raises(TrainingCancelled):
        train(config(tiny_model_dir, out), TICKETS, [], hooks)
    assert len(hooks.steps) == 2
    assert "saving" not in hooks.phases
    assert not out.exists()


def test_without_chat_template_the_fallback_is_saved_for_serving(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    base = tmp_path / "base"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.chat_template = None
    import shutil

    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer.save_pretrained(str(base))
    assert AutoTokenizer.from_pretrained(str(base)).chat_template is None

    out = tmp_path / "adapter"
    result = train(config(tiny_model_dir, out, base_model_path=str(base), max_epochs=1), TICKETS[:4], [])
    assert result.template == "fallback"
    assert result.validation_loss is None
    saved = AutoTokenizer.from_pretrained(str(out))
    assert "### Response" in saved.chat_template
    assert json.loads((out / "studio_adapter.json").read_text())["chat_template"] == "fallback"


def test_the_adapter_is_checked_against_the_base_model_on_validation_prompts(trained):
    _, result, _ = trained
    check = result.adapter_check
    assert check["prompts"] == 3 and check["differing"] == 3 and check["live"] is True
    assert [e["prompt"] for e in check["examples"]] == [p for p, _ in ACKNOWLEDGEMENTS[:3]]
    assert all(e["adapter"] == REPLY and e["base"] != REPLY for e in check["examples"])


def test_an_adapter_that_learnt_nothing_is_reported_as_not_live(tiny_model_dir, tmp_path):
    result = train(config(tiny_model_dir, tmp_path / "adapter", max_epochs=1, learning_rate=1e-9),
                   ACKNOWLEDGEMENTS[:4], ACKNOWLEDGEMENTS[4:6])
    assert result.adapter_check["differing"] == 0 and result.adapter_check["live"] is False
    saved = json.loads((tmp_path / "adapter" / "studio_adapter.json").read_text())
    assert saved["adapter_check"] == result.adapter_check


def test_evaluation_also_runs_every_eval_steps_and_the_best_checkpoint_wins(tiny_model_dir, tmp_path):
    hooks = Recorder()
    # 12 rows in batches of 4: 3 steps per epoch; every 2 steps plus each epoch end.
    result = train(config(tiny_model_dir, tmp_path / "adapter", max_epochs=2, eval_steps=2),
                   ACKNOWLEDGEMENTS, ACKNOWLEDGEMENTS[:2], hooks)
    assert [round(e, 4) for e, _ in hooks.evals] == [0.6667, 1, 1.3333, 2]
    assert [v["step"] for v in result.val_history] == [2, 3, 4, 6]
    best = min(result.val_history, key=lambda v: v["validation_loss"])
    assert result.validation_loss == best["validation_loss"] and result.best_epoch == pytest.approx(best["step"] / 3)


def test_each_step_reports_the_time_left(trained):
    _, _, hooks = trained
    etas = [m.eta_seconds for m in hooks.steps]
    assert etas[-1] == 0 and all(eta > 0 for eta in etas[:-1])
