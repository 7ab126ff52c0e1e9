"""completion_loss_sum equals the plain loss (logits everywhere, shifted cross-entropy) in value and gradients,
with and without the shared prefix run once."""
from __future__ import annotations

import sys

import pytest
import torch

from trainer.config import LLAMA_PROJECTIONS
from trainer import loss as loss_module
from trainer.loss import MIN_SHARED_PREFIX, completion_loss_sum, shared_prefix_length
from trainer.prepare import IGNORE_INDEX, encode_rows
from trainer.train import collate

from .conftest import ACKNOWLEDGEMENTS, TICKETS


def plain_loss_sum(model, batch):
    """The definition: every position's logits, next-token cross-entropy over the labelled tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, int((targets != IGNORE_INDEX).sum())


def lora_model(tiny_model_dir, seed=0):
    """The tiny Llama with LoRA on the seven projections, B initialised randomly so the adapter is live
    and every LoRA matrix gets a non-zero gradient."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), use_cache=False)
    lora = LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0,
                      target_modules=list(LLAMA_PROJECTIONS), init_lora_weights=False)
    return get_peft_model(model, lora)


@pytest.fixture
def batch(tokenizer):
    """Rows of different lengths (so some are padded) and one row with no labelled token at all."""
    rows = [TICKETS[0], (TICKETS[1][0] + " It was due on Monday, then Tuesday, and it is now Friday.", "SHIPPING"),
            ACKNOWLEDGEMENTS[2], TICKETS[3]]
    examples = encode_rows(tokenizer, rows)
    examples[3].labels = [IGNORE_INDEX] * len(examples[3].labels)
    b = collate(examples, tokenizer.pad_token_id, "cpu")
    assert (b["attention_mask"] == 0).any() and (b["labels"][3] == IGNORE_INDEX).all()
    # The chat template's system prompt and the shared instruction: computed once for all rows.
    assert shared_prefix_length(b["input_ids"], b["attention_mask"]) >= MIN_SHARED_PREFIX
    return b


@pytest.fixture(params=["shared prefix", "no shared prefix"])
def prefix_sharing(request, monkeypatch):
    if request.param == "no shared prefix":  # what a GPU runs
        monkeypatch.setattr(loss_module, "PREFIX_SHARING_DEVICES", ())
    return request.param


def lora_grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_training_and_evaluation_use_it(monkeypatch):
    train_module = sys.modules["trainer.train"]  # `trainer.train` the attribute is the function
    monkeypatch.setattr(train_module, "completion_loss_sum", lambda model, batch: ("called", model, batch))
    assert train_module.loss_sum("model", "batch") == ("called", "model", "batch")


def test_same_loss_and_count_as_the_plain_computation(tiny_model_dir, batch, prefix_sharing):
    model = lora_model(tiny_model_dir)
    expected, expected_n = plain_loss_sum(model, batch)
    loss, n = completion_loss_sum(model, batch)
    assert n == expected_n == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()) > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.dtype == torch.float32


def test_same_gradients_as_the_plain_computation(tiny_model_dir, batch, prefix_sharing):
    model = lora_model(tiny_model_dir)
    loss, n = plain_loss_sum(model, batch)
    (loss / n).backward()
    expected = lora_grads(model)
    model.zero_grad(set_to_none=True)
    loss, n = completion_loss_sum(model, batch)
    (loss / n).backward()
    got = lora_grads(model)
    assert got.keys() == expected.keys() and len(got) == 2 * 7 * 2  # A and B, 7 projections, 2 layers
    for name in expected:
        assert expected[name].abs().max() > 0, name
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("optimizer_name", ["adamw", "sgd"])
def test_optimizer_steps_give_the_same_adapter(tiny_model_dir, batch, prefix_sharing, optimizer_name):
    """Training as train() does, from the default init (B = 0) and the same seed, with either loss."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lr = 1e-2

    def step(loss_fn):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), use_cache=False)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32,
                                                 target_modules=list(LLAMA_PROJECTIONS)))
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = (torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0) if optimizer_name == "adamw"
                     else torch.optim.SGD(trainable, lr=lr * 100))
        model.train()
        for _ in range(2):  # the second step also moves A (its gradient is zero while B is)
            loss, n = loss_fn(model, batch)
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    expected, got = step(plain_loss_sum), step(completion_loss_sum)
    assert all(expected[name].abs().max() > 0 for name in expected)
    if optimizer_name == "sgd":  # steps proportional to the gradients: as close as they are
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-7)
        return
    # Adam divides each element's step by that element's gradient size, so where a gradient is near
    # zero (~eps = 1e-8) float rounding in it moves the step by up to about lr x rounding / eps: a few
    # elements in ten thousand move by a fraction of lr (up to 18% of it on one Xeon host, a few % on
    # another: the rounding is the CPU's), never by more than Adam's own bound on a step (about lr per
    # step); the adapter as a whole agrees to 1e-4.
    flat = lambda weights: torch.cat([weights[name].flatten() for name in sorted(weights)])  # noqa: E731
    diff = flat(got) - flat(expected)
    assert diff.abs().max() < 0.5 * lr
    assert (diff.abs() > 1e-6).float().mean() < 0.002
    assert diff.norm() / flat(expected).norm() < 1e-3


def test_a_batch_without_labelled_tokens_gives_zero(tiny_model_dir, batch, prefix_sharing):
    model = lora_model(tiny_model_dir)
    empty = dict(batch, labels=torch.full_like(batch["labels"], IGNORE_INDEX))
    loss, n = completion_loss_sum(model, empty)
    assert n == 0 and loss.item() == 0.0
    (loss / max(1, n)).backward()  # what train() does: no error, no NaN
    assert all(torch.isfinite(g).all() and not g.any() for g in lora_grads(model).values())


def test_padding_and_other_rows_do_not_change_a_rows_loss(tiny_model_dir, tokenizer, batch, prefix_sharing):
    model = lora_model(tiny_model_dir).eval()
    with torch.no_grad():
        whole, _ = completion_loss_sum(model, batch)
        per_row = [completion_loss_sum(model, {k: v[i : i + 1] for k, v in batch.items()}) for i in range(4)]
        alone = [completion_loss_sum(model, collate(encode_rows(tokenizer, [row]), tokenizer.pad_token_id, "cpu"))[0]
                 for row in (TICKETS[0], ACKNOWLEDGEMENTS[2])]
    assert (per_row[3][0].item(), per_row[3][1]) == (0.0, 0)
    assert whole.item() == pytest.approx(sum(loss.item() for loss, _ in per_row), rel=1e-5)
    for a, (b, _) in zip(alone, (per_row[0], per_row[2])):  # unpadded alone vs padded to the batch's width
        assert a.item() == pytest.approx(b.item(), rel=1e-4)


def test_works_on_a_plain_causal_lm_too(tiny_model_dir, batch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), use_cache=False).eval()
    with torch.no_grad():
        expected, expected_n = plain_loss_sum(model, batch)
        loss, n = completion_loss_sum(model, batch)
    assert n == expected_n and loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_labels_inside_the_shared_prefix_get_the_right_loss_and_gradients(tiny_model_dir, batch):
    """Every token labelled (plain language modelling): the shared prefix's own predictions count once per row."""
    model = lora_model(tiny_model_dir)
    full = dict(batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX))
    expected, expected_n = plain_loss_sum(model, full)
    (expected / expected_n).backward()
    expected_grads = lora_grads(model)
    model.zero_grad(set_to_none=True)
    loss, n = completion_loss_sum(model, full)
    (loss / n).backward()
    assert n == expected_n and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, grad in lora_grads(model).items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_shared_prefix_length():
    ids = torch.tensor([[1, 2, 3, 4, 5, 0], [1, 2, 3, 9, 0, 0], [1, 2, 3, 4, 7, 8]])
    mask = (torch.arange(6) < torch.tensor([[5], [4], [6]])).long()
    assert shared_prefix_length(ids, mask) == 3
    assert shared_prefix_length(ids[:1], mask[:1]) == 0  # one row: nothing to share
    same = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    assert shared_prefix_length(same, torch.ones_like(same)) == 3  # each row keeps a token of its own
    left_padded = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    assert shared_prefix_length(left_padded, (left_padded != 0).long()) == 0
    short = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 0, 0, 0]])
    assert shared_prefix_length(short, (short != 0).long()) == 1  # the shorter row's last token stays out


def test_identical_rows_and_evaluation_mode(tiny_model_dir, tokenizer):
    model = lora_model(tiny_model_dir).eval()
    same = collate(encode_rows(tokenizer, [TICKETS[0]] * 3), tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        expected, expected_n = plain_loss_sum(model, same)
        loss, n = completion_loss_sum(model, same)
    assert n == expected_n and loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_checkpointing_falls_back_to_the_plain_forward(tiny_model_dir, batch):
    model = lora_model(tiny_model_dir)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    expected, expected_n = plain_loss_sum(model, batch)
    loss, n = completion_loss_sum(model, batch)
    assert n == expected_n and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    (loss / n).backward()
    assert all(g.abs().max() > 0 for g in lora_grads(model).values())
