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


def data_hash(rows: Sequence[tuple[str, str]]) -> str:
    """sha256 over the rows in order; JSON encoding keeps ("a", "bc") and ("ab", "c") apart."""
    digest = hashlib.sha256()
    for prompt, completion in rows:
        digest.update(json.dumps([prompt, completion], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
