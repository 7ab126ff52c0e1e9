"""Encoded training rows on disk, memory-mapped: a data set of any size in bounded memory.

A store is a directory, written once by TokenStoreWriter as batches of rows arrive, then opened read-only
by every rank of a run by its path (TokenStore(path)): the pages are the operating system's to share
between the ranks' processes and to drop when memory is short, where a list of Python ints per row
costs ~36 bytes a token in every process that holds it. Files, each a flat little-endian array:

    ids.bin             int32  every row's token ids, row after row (rendered prompt + completion)
    lengths.bin         int32  tokens per row
    prompt_lengths.bin  int32  of which the prompt's (masked out of the loss)
    train.bin           int64  the rows trained on, in order (positions in the store)
    validation.bin      int64  the rows validated on, in order
    meta.json           counts, template kind, the data's hashes, a few prompts; written last, so a
                        directory without it is a store that was never finished

Row positions in the store are the order rows were added (a query's order); train and validation
say which split each belongs to, so a validation split can be made while the rows are streamed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, overload

import numpy as np

from .fingerprint import combined_hash, row_bytes
from .prepare import IGNORE_INDEX, DataError, Example, Row, encode_batch, over_limits_message

META_FILE = "meta.json"
FORMAT_VERSION = 1
# Prompts kept as text, per split: the adapter check after training answers a few of them.
SAMPLE_PROMPTS = 32
# Rows per tokenizer call when rows come as one list (TokenStoreWriter.add_rows); a batched call lets the
# fast tokenizer use its threads, and the lists of ints it returns live only for one batch.
ENCODE_BATCH_ROWS = 2048
_FILES = {"ids": np.int32, "lengths": np.int32, "prompt_lengths": np.int32, "train": np.int64, "validation": np.int64}


def _map(path: Path, dtype: Any) -> np.ndarray:
    """The file as a read-only array; numpy cannot map an empty file."""
    if path.stat().st_size == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class Rows(Sequence[Example]):
    """One split of a store as the training loop reads it: Examples built on demand from the mapped
    ids, one batch at a time."""

    def __init__(self, store: TokenStore, index: np.ndarray) -> None:
        self.store, self.index = store, index

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row, in the split's order."""
        return self.store.lengths[self.index]

    @property
    def tokens(self) -> int:
        return int(self.store.lengths[self.index].sum(dtype=np.int64))

    def __len__(self) -> int:
        return len(self.index)

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self.store.example(int(row)) for row in self.index[i]]
        return self.store.example(int(self.index[i]))

    def __iter__(self) -> Iterator[Example]:
        return (self.store.example(int(row)) for row in self.index)


class TokenStore:
    """A finished store, opened read-only. Cheap to open: nothing is read until a row is."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.directory} holds no finished token store")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        arrays = {name: _map(self.directory / f"{name}.bin", dtype) for name, dtype in _FILES.items()}
        self.ids, self.lengths, self.prompt_lengths = arrays["ids"], arrays["lengths"], arrays["prompt_lengths"]
        self.offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self.train = Rows(self, arrays["train"])
        self.validation = Rows(self, arrays["validation"])

    @property
    def template(self) -> str:
        """"model" or "fallback", as prepare.template_kind."""
        return self.meta["template"]

    @property
    def train_hash(self) -> str:
        """fingerprint.data_hash of the training rows."""
        return self.meta["train_hash"]

    @property
    def validation_hash(self) -> str:
        return self.meta["validation_hash"]

    @property
    def data_hash(self) -> str:
        """What the adapter was trained from: both splits' hashes (fingerprint.combined_hash)."""
        return self.meta["data_hash"]

    @property
    def longest_row(self) -> int:
        return int(self.lengths.max()) if len(self.lengths) else 0

    def example(self, row: int) -> Example:
        start = int(self.offsets[row])
        ids = self.ids[start : start + int(self.lengths[row])].tolist()
        n_prompt = int(self.prompt_lengths[row])
        return Example(input_ids=ids, labels=[IGNORE_INDEX] * n_prompt + ids[n_prompt:], template=self.template)

    def sample_prompts(self, n: int) -> list[str]:
        """The first n validation prompts, or the first n training prompts without validation rows (at
        most SAMPLE_PROMPTS)."""
        return (self.meta["validation_prompts"] or self.meta["train_prompts"])[:n]


class TokenStoreWriter:
    """Writes a store batch by batch: memory holds one batch of rows and their ids, never the data set.

    add(rows, validation) for each batch in order, then finish(); the store is usable only once
    finish() returned. An existing directory is replaced (a job that starts over writes it anew).
    """

    def __init__(self, directory: str | Path, tokenizer: Any) -> None:
        self.directory = Path(directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.tokenizer = tokenizer
        self.files = {name: open(self.directory / f"{name}.bin", "wb") for name in _FILES}
        self.rows = 0
        self.template: str | None = None
        # fingerprint.data_hash of each split, computed as the rows pass.
        self.train_digest, self.validation_digest = hashlib.sha256(), hashlib.sha256()
        self.train_prompts: list[str] = []
        self.validation_prompts: list[str] = []

    def add(self, rows: Sequence[Row], validation: bool | Sequence[bool] = False) -> None:
        """Encode one batch and append it. validation: the split of every row of the batch, or of each."""
        if not rows:
            return
        flags = [validation] * len(rows) if isinstance(validation, bool) else list(validation)
        ids, prompt_lengths, kind = encode_batch(self.tokenizer, rows)
        self.template = self.template or kind
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int32, count=len(ids))
        self.files["ids"].write(np.fromiter((t for row in ids for t in row), dtype=np.int32,
                                            count=int(lengths.sum(dtype=np.int64))).tobytes())
        self.files["lengths"].write(lengths.tobytes())
        self.files["prompt_lengths"].write(np.asarray(prompt_lengths, dtype=np.int32).tobytes())
        positions = np.arange(self.rows, self.rows + len(rows), dtype=np.int64)
        is_validation = np.asarray(flags, dtype=bool)
        self.files["train"].write(positions[~is_validation].tobytes())
        self.files["validation"].write(positions[is_validation].tobytes())
        self.rows += len(rows)
        for (prompt, completion), held_out in zip(rows, flags):
            encoded = row_bytes(prompt, completion)
            if held_out:
                self.validation_digest.update(encoded)
                if len(self.validation_prompts) < SAMPLE_PROMPTS:
                    self.validation_prompts.append(prompt)
            else:
                self.train_digest.update(encoded)
                if len(self.train_prompts) < SAMPLE_PROMPTS:
                    self.train_prompts.append(prompt)

    def add_rows(self, rows: Iterable[Row], validation: bool = False) -> None:
        """add() in batches of ENCODE_BATCH_ROWS."""
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) == ENCODE_BATCH_ROWS:
                self.add(batch, validation)
                batch = []
        self.add(batch, validation)

    def finish(self, max_prompt_tokens: int | None = None, max_completion_tokens: int | None = None) -> TokenStore:
        """Close the files and check every row against the token allotments: rows over them raise
        DataError, numbered across the training rows followed by the validation rows (as train() numbers
        them); otherwise the finished store."""
        for f in self.files.values():
            f.close()
        if not self.rows:
            raise DataError("The training data has no rows.")
        train_hash, validation_hash = self.train_digest.hexdigest(), self.validation_digest.hexdigest()
        meta = {
            "format": FORMAT_VERSION, "rows": self.rows, "template": self.template,
            "train_hash": train_hash, "validation_hash": validation_hash,
            "data_hash": combined_hash(train_hash, validation_hash),
            "train_prompts": self.train_prompts, "validation_prompts": self.validation_prompts,
        }
        partial = self.directory / f"{META_FILE}.partial"
        partial.write_text(json.dumps(meta, ensure_ascii=False))
        os.replace(partial, self.directory / META_FILE)
        store = TokenStore(self.directory)
        message = _limits_message(store, max_prompt_tokens, max_completion_tokens)
        if message:
            raise DataError(message)
        return store


def _limits_message(store: TokenStore, max_prompt_tokens: int | None, max_completion_tokens: int | None) -> str | None:
    if max_prompt_tokens is None and max_completion_tokens is None:
        return None
    order = np.concatenate([store.train.index, store.validation.index])
    n_prompt = store.prompt_lengths[order]
    n_completion = store.lengths[order] - n_prompt
    too_long_prompt = np.flatnonzero(n_prompt > max_prompt_tokens) + 1 if max_prompt_tokens is not None else []
    too_long_completion = (np.flatnonzero(n_completion > max_completion_tokens) + 1
                           if max_completion_tokens is not None else [])
    return over_limits_message(too_long_prompt, too_long_completion, max_prompt_tokens, max_completion_tokens)


def write(directory: str | Path, tokenizer: Any, train_rows: Sequence[Row], val_rows: Sequence[Row],
          max_prompt_tokens: int | None = None, max_completion_tokens: int | None = None) -> TokenStore:
    """A store of rows already in memory: the training rows, then the validation rows."""
    writer = TokenStoreWriter(directory, tokenizer)
    writer.add_rows(train_rows)
    writer.add_rows(val_rows, validation=True)
    return writer.finish(max_prompt_tokens, max_completion_tokens)


def open_or_write(path: str | None, tokenizer: Any, train_rows: Sequence[Row], val_rows: Sequence[Row],
                  max_prompt_tokens: int | None, max_completion_tokens: int | None
                  ) -> tuple[TokenStore, tempfile.TemporaryDirectory | None]:
    """A run's rows: the finished store at `path`, or else the rows given, written into a temporary store
    that is removed when the returned directory handle goes."""
    if path:
        return TokenStore(path), None
    scratch = tempfile.TemporaryDirectory(prefix="studio-tokens-")
    store = write(Path(scratch.name) / "tokens", tokenizer, train_rows, val_rows, max_prompt_tokens, max_completion_tokens)
    return store, scratch
