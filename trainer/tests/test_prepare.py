"""Data preparation: what the model is trained on, and the errors users see for data it cannot use."""
from __future__ import annotations

import pytest

from trainer.prepare import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    DataError,
    auto_epochs,
    check_rows,
    encode_rows,
    split_validation,
)

from .conftest import TICKETS


def trained_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])


def test_rows_are_rendered_with_the_models_chat_template(tokenizer):
    [example] = encode_rows(tokenizer, [("Where is my parcel?", "SHIPPING")])
    assert example.template == "model"
    assert tokenizer.decode(example.input_ids) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhere is my parcel?<|im_end|>\n"
        "<|im_start|>assistant\nSHIPPING<|im_end|>\n"
    )


def test_loss_covers_the_completion_and_its_end_of_turn_token_only(tokenizer):
    [example] = encode_rows(tokenizer, [("Where is my parcel?", "SHIPPING")])
    assert trained_text(tokenizer, example) == "SHIPPING<|im_end|>\n"
    # Everything before the completion is masked: the prompt is context, not a target.
    first_label = next(i for i, t in enumerate(example.labels) if t != IGNORE_INDEX)
    assert tokenizer.decode(example.input_ids[:first_label]).endswith("<|im_start|>assistant\n")


def test_a_tokenizer_without_chat_template_gets_the_documented_fallback(tokenizer):
    tokenizer.chat_template = None
    [example] = encode_rows(tokenizer, [("Where is my parcel?", "SHIPPING")])
    assert example.template == "fallback"
    assert tokenizer.decode(example.input_ids) == "### Prompt:\nWhere is my parcel?\n### Response:\nSHIPPING<|im_end|>\n"
    assert trained_text(tokenizer, example) == "SHIPPING<|im_end|>\n"
    assert "### Response" in FALLBACK_CHAT_TEMPLATE


def test_rows_over_the_token_allotments_are_named(tokenizer):
    rows = [("short", "ok")] * 3 + [("word " * 200, "ok"), ("short", "long " * 50), ("word " * 300, "ok")]
    with pytest.raises(DataError) as error:
        encode_rows(tokenizer, rows, max_prompt_tokens=100, max_completion_tokens=20)
    assert str(error.value) == (
        "2 rows have a prompt longer than 100 tokens (rows 4, 6); "
        "1 row has a completion longer than 20 tokens (row 5)."
    )


def test_empty_prompts_and_completions_are_reported_with_row_numbers():
    rows = [("a", "b"), ("", "b"), ("a", "   "), ("a", None), (None, "b")]
    with pytest.raises(DataError) as error:
        check_rows(rows)
    assert str(error.value) == (
        "2 rows have an empty prompt (rows 2, 5); 2 rows have an empty completion (rows 3, 4)."
    )


def test_long_lists_of_bad_rows_are_abbreviated():
    rows = [("", "b")] * 8
    with pytest.raises(DataError, match=r"^8 rows have an empty prompt \(rows 1, 2, 3, 4, 5, …\)\.$"):
        check_rows(rows)


def test_training_data_over_the_size_limit_is_refused():
    rows = [("x" * 600, "y" * 600)]
    with pytest.raises(DataError) as error:
        check_rows(rows, max_training_bytes=1000)
    assert str(error.value) == (
        "The training data is 1,200 bytes (1.2 KB), over this base model's limit of 1,000 bytes (1.0 KB)."
    )


def test_no_rows_is_an_error():
    with pytest.raises(DataError, match="The training data has no rows."):
        check_rows([])


@pytest.mark.parametrize(
    ("n_rows", "n_validation"),
    [(2, 1), (5, 1), (12, 1), (40, 4), (100, 10), (20_000, 1000)],
)
def test_automatic_validation_split_holds_out_a_tenth_at_least_one_at_most_1000(n_rows, n_validation):
    rows = [(f"p{i}", f"c{i}") for i in range(n_rows)]
    train, validation = split_validation(rows, fraction=0.1, seed=0)
    assert len(validation) == n_validation
    assert len(train) + len(validation) == n_rows
    assert not set(train) & set(validation)
    assert split_validation(rows, fraction=0.1, seed=0) == (train, validation)  # reproducible


def test_a_single_row_cannot_be_split():
    with pytest.raises(DataError, match="At least 2 rows are needed to hold out a validation row; the training data has 1."):
        split_validation([("p", "c")], fraction=0.1, seed=0)


@pytest.mark.parametrize(("n_rows", "epochs"), [(1, 10), (9, 10), (10, 10), (11, 10), (12, 9), (40, 3), (100, 1), (5000, 1)])
def test_automatic_epochs_aim_at_about_100_row_visits(n_rows, epochs):
    assert auto_epochs(n_rows) == epochs


def test_every_ticket_row_trains_on_its_label(tokenizer):
    examples = encode_rows(tokenizer, TICKETS)
    assert [trained_text(tokenizer, e) for e in examples] == [f"{label}<|im_end|>\n" for _, label in TICKETS]
