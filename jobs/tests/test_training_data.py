"""A job's rows read in Arrow batches and tokenised batch by batch into its token store: the same rows,
split and errors as reading them all at once, in memory that does not grow with the data."""
from __future__ import annotations

import pytest

from jobs import training_data
from jobs.models import FineTuneJob
from jobs.training_data import job_session, prepare_tokens, read_batches, read_rows
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value
from trainer import DataError, TrainingCancelled
from trainer.fingerprint import data_hash
from trainer.prepare import encode_rows, split_validation

ROWS = [{"prompt": f"Code for colour {i}?", "completion": f"C-{i:03d}"} for i in range(300)]


@pytest.fixture
def session(db, tiny_llama, tmp_path, monkeypatch):
    from access.bootstrap import bootstrap

    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "CHECKS", "EXAMPLES", ROWS)
    # Batches much smaller than the data, so every test crosses batch boundaries.
    monkeypatch.setattr(training_data, "READ_BATCH_ROWS", 64)
    return admin_session(database="CHECKS", schema="PUBLIC")


@pytest.fixture
def tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama_dir))


def job(session, training: str, validation: str | None = None) -> FineTuneJob:
    args = ["codes", "tiny-llama", training, validation]
    rendered = ", ".join("NULL" if a is None else sql_literal(a) for a in args)
    return FineTuneJob.objects.get(pk=sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', {rendered})"))


def prepare(job, tokenizer, tmp_path, *, max_training_bytes=None, max_prompt_tokens=None, max_completion_tokens=None,
            should_cancel=lambda: False):
    return prepare_tokens(job, tmp_path / "tokens", tokenizer, max_training_bytes=max_training_bytes,
                          max_prompt_tokens=max_prompt_tokens, max_completion_tokens=max_completion_tokens,
                          validation_fraction=0.1, should_cancel=should_cancel)


def test_the_query_is_read_in_batches_in_its_order(session):
    batches = list(read_batches(session, "SELECT prompt, completion FROM examples ORDER BY completion DESC"))
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44]
    assert [row for batch in batches for row in batch] == [(r["prompt"], r["completion"]) for r in reversed(ROWS)]


def test_the_store_holds_the_split_and_tokens_reading_everything_at_once_gave(session, tokenizer, tmp_path):
    query = "SELECT prompt, completion FROM examples ORDER BY completion"
    store = prepare(job(session, query), tokenizer, tmp_path)
    train_rows, val_rows = split_validation(read_rows(session, query), fraction=0.1, seed=0)
    assert (len(store.train), len(store.validation)) == (270, 30)
    assert list(store.train) == encode_rows(tokenizer, train_rows)
    assert list(store.validation) == encode_rows(tokenizer, val_rows)
    assert (store.train_hash, store.validation_hash) == (data_hash(train_rows), data_hash(val_rows))


def test_a_validation_query_fills_the_validation_split(session, tokenizer, tmp_path):
    store = prepare(job(session, "SELECT prompt, completion FROM examples WHERE completion < 'C-200' ORDER BY 2",
                        "SELECT prompt, completion FROM examples WHERE completion >= 'C-200' ORDER BY 2"),
                    tokenizer, tmp_path)
    assert (len(store.train), len(store.validation)) == (200, 100)
    assert store.sample_prompts(1) == ["Code for colour 200?"]


def test_empty_rows_are_numbered_across_batches_as_check_rows_numbers_them(session, tokenizer, tmp_path):
    created = job(session, "SELECT prompt, completion FROM examples ORDER BY completion")
    created.training_data = ("SELECT prompt, CASE WHEN completion IN ('C-010', 'C-100', 'C-250') THEN ' ' "
                             "ELSE completion END AS completion FROM examples ORDER BY prompt")
    expected = sorted(range(300), key=lambda i: f"Code for colour {i}?")
    numbers = sorted(expected.index(i) + 1 for i in (10, 100, 250))
    with pytest.raises(DataError) as error:
        prepare(created, tokenizer, tmp_path)
    assert str(error.value) == f"3 rows have an empty completion (rows {', '.join(map(str, numbers))})."


def test_data_over_the_size_limit_is_refused_with_its_whole_size(session, tokenizer, tmp_path):
    size = sum(len(r["prompt"]) + len(r["completion"]) for r in ROWS)
    with pytest.raises(DataError) as error:
        prepare(job(session, "SELECT prompt, completion FROM examples"), tokenizer, tmp_path, max_training_bytes=1000)
    assert str(error.value) == (f"The training data is {size:,} bytes ({size / 1e3:.1f} KB), over this base model's "
                                "limit of 1,000 bytes (1.0 KB).")


def test_rows_over_the_token_allotments_are_refused(session, tokenizer, tmp_path):
    with pytest.raises(DataError, match=r"^300 rows have a completion longer than 2 tokens \(rows 1, 2, 3, 4, 5, …\)\.$"):
        prepare(job(session, "SELECT prompt, completion FROM examples"), tokenizer, tmp_path, max_completion_tokens=2)


def test_a_validation_query_with_an_empty_prompt_is_named(session, tokenizer, tmp_path):
    created = job(session, "SELECT prompt, completion FROM examples", "SELECT prompt, completion FROM examples")
    created.validation_data = "SELECT NULL AS prompt, completion FROM examples LIMIT 1"
    with pytest.raises(DataError, match=r"^Validation data: 1 row has an empty prompt \(row 1\)\.$"):
        prepare(created, tokenizer, tmp_path)


def test_a_cancelled_job_stops_reading_between_batches(session, tokenizer, tmp_path):
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) >= 2

    with pytest.raises(TrainingCancelled):
        prepare(job(session, "SELECT prompt, completion FROM examples"), tokenizer, tmp_path, should_cancel=cancelled)
    assert len(asked) == 2


def test_a_grant_revoked_after_create_stops_the_read(session, tokenizer, tmp_path):
    created = job(session, "SELECT prompt, completion FROM examples")
    created.role = "PUBLIC"  # as if ACCOUNTADMIN's grant were gone: the worker reads as the job's role
    with pytest.raises(Exception, match="does not exist or not authorized"):
        prepare(created, tokenizer, tmp_path)
    assert job_session(created).role == "PUBLIC"
