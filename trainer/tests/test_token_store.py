"""The token store: rows encoded batch by batch onto disk read back exactly as encode_rows builds them."""
from __future__ import annotations

import numpy as np
import pytest

from trainer import token_store
from trainer.fingerprint import data_hash
from trainer.prepare import DataError, RowCheck, check_rows, encode_rows
from trainer.token_store import TokenStore, TokenStoreWriter

from .conftest import TICKETS


def test_a_store_reads_back_what_encode_rows_builds_split_as_written(tokenizer, tmp_path):
    held_out = {1, 6, 10}
    writer = TokenStoreWriter(tmp_path / "tokens", tokenizer)
    for start in range(0, len(TICKETS), 5):  # batches that do not line up with anything
        batch = TICKETS[start : start + 5]
        writer.add(batch, [start + i in held_out for i in range(len(batch))])
    store = writer.finish()

    train_rows = [row for i, row in enumerate(TICKETS) if i not in held_out]
    val_rows = [row for i, row in enumerate(TICKETS) if i in held_out]
    assert list(store.train) == encode_rows(tokenizer, train_rows)
    assert list(store.validation) == encode_rows(tokenizer, val_rows)
    assert store.validation[1:] == encode_rows(tokenizer, val_rows[1:])
    assert list(store.train.lengths) == [len(e.input_ids) for e in encode_rows(tokenizer, train_rows)]
    assert store.train_hash == data_hash(train_rows) and store.validation_hash == data_hash(val_rows)
    assert store.template == "model"
    assert store.sample_prompts(2) == [p for p, _ in val_rows[:2]]


def test_a_store_is_opened_read_only_by_its_path_as_often_as_ranks_need(tokenizer, tmp_path):
    token_store.write(tmp_path / "tokens", tokenizer, TICKETS[:4], TICKETS[4:6])
    first, second = TokenStore(tmp_path / "tokens"), TokenStore(tmp_path / "tokens")
    assert first.train[3] == second.train[3] == encode_rows(tokenizer, [TICKETS[3]])[0]
    assert isinstance(first.ids, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        first.ids[0] = 1
    assert second.sample_prompts(5) == [TICKETS[4][0], TICKETS[5][0]]


def test_an_unfinished_store_is_not_opened(tokenizer, tmp_path):
    writer = TokenStoreWriter(tmp_path / "tokens", tokenizer)
    writer.add(TICKETS[:3])
    with pytest.raises(FileNotFoundError, match="no finished token store"):
        TokenStore(tmp_path / "tokens")


def test_rows_over_the_allotments_are_named_as_encode_rows_names_them(tokenizer, tmp_path):
    train_rows = [("short", "ok")] * 3 + [("word " * 200, "ok"), ("short", "long " * 50)]
    val_rows = [("word " * 300, "ok")]
    with pytest.raises(DataError) as expected:
        encode_rows(tokenizer, train_rows + val_rows, max_prompt_tokens=100, max_completion_tokens=20)
    with pytest.raises(DataError) as error:
        token_store.write(tmp_path / "tokens", tokenizer, train_rows, val_rows, max_prompt_tokens=100,
                          max_completion_tokens=20)
    assert str(error.value) == str(expected.value) == (
        "2 rows have a prompt longer than 100 tokens (rows 4, 6); "
        "1 row has a completion longer than 20 tokens (row 5)."
    )


def test_checking_in_batches_says_what_checking_at_once_says():
    rows = [("p", "c")] * 3 + [("", "c"), ("p", " ")] * 4 + [(None, None)]
    with pytest.raises(DataError) as at_once:
        check_rows(rows)
    check = RowCheck()
    for start in range(0, len(rows), 4):
        check.add(rows[start : start + 4])
    assert not check.usable
    with pytest.raises(DataError) as in_batches:
        check.raise_if_unusable()
    assert str(in_batches.value) == str(at_once.value) == (
        "5 rows have an empty prompt (rows 4, 6, 8, 10, 12); 5 rows have an empty completion (rows 5, 7, 9, 11, 12)."
    )


def test_the_size_limit_is_checked_over_every_batch():
    check = RowCheck(max_training_bytes=1000)
    for _ in range(11):
        check.add([("a" * 50, "b" * 50)])
    assert not check.usable
    with pytest.raises(DataError, match=r"^The training data is 1,100 bytes \(1.1 KB\), over this base model's "
                                        r"limit of 1,000 bytes \(1.0 KB\)\.$"):
        check.raise_if_unusable()
