"""Cheap identities for what an adapter was trained from. No torch import: the web side can use these."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence


def base_model_hash(base_model_path: str | Path) -> str:
    """sha256 over the names and sizes of config.json and the *.safetensors files.

    Names and sizes, not contents: hashing gigabytes of weights on every job would cost more than a
    small training run, and a changed checkpoint practically always changes a size or a name.
    """
    root = Path(base_model_path)
    files = sorted({root / "config.json", *root.glob("*.safetensors")})
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size if path.exists() else -1
        digest.update(f"{path.name}\0{size}\n".encode())
    return digest.hexdigest()


def row_bytes(prompt: str | None, completion: str | None) -> bytes:
    """One row as data_hash hashes it; JSON encoding keeps ("a", "bc") and ("ab", "c") apart."""
    return json.dumps([prompt, completion], ensure_ascii=False).encode() + b"\n"


def data_hash(rows: Sequence[tuple[str, str]]) -> str:
    """sha256 over the rows in order."""
    digest = hashlib.sha256()
    for prompt, completion in rows:
        digest.update(row_bytes(prompt, completion))
    return digest.hexdigest()


def combined_hash(train_hash: str, validation_hash: str) -> str:
    """A data set's identity from its two splits' data_hash: what studio_adapter.json records as data_hash.
    Computed from the splits' hashes so that rows streamed in a query's order, the splits interleaved,
    need not be held in memory to be hashed in another order."""
    return hashlib.sha256(f"{train_hash}\n{validation_hash}".encode()).hexdigest()
