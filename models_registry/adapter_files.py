"""The files of a fine-tuned model's adapter directory as another deployment receives them: each by its
relative path, with its size and SHA-256, which the receiver checks before it uses any of them (sharing
and replication alike), and the one file a listed path names."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from errors import UserError
from models_registry.models import FineTunedModel
from organization import peers

# The trainer writes it beside the weights (trainer/adapter.py); the inference servers read the model's id in it.
METADATA_FILE = "studio_adapter.json"


def _paths(model: FineTunedModel) -> list[Path]:
    return sorted(p for p in model.adapter_dir.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    """The SHA-256 a receiver checks a file it is sent against (adapter files, replicated table exports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def listed(model: FineTunedModel) -> list[dict[str, Any]]:
    root = model.adapter_dir
    return [{"path": path.relative_to(root).as_posix(), "size": path.stat().st_size, "sha256": sha256(path)}
            for path in _paths(model)]


def version(files: list[dict[str, Any]]) -> str:
    """One adapter version per set of file contents: a changed file is a new version."""
    return hashlib.sha256(json.dumps(sorted((f["path"], f["sha256"]) for f in files)).encode()).hexdigest()[:24]


def one(model: FineTunedModel, path: str) -> Path:
    """The adapter file at a relative path `listed` gives, and only such a path (no traversal, no other
    file of the server), without hashing every file again for each one fetched."""
    names = {p.relative_to(model.adapter_dir).as_posix() for p in _paths(model)}
    if path not in names:
        raise UserError(f"Model {model.qualified_name} has no file '{path}'.", code=2003, sqlstate="02000",
                        refused=True)
    return model.adapter_dir / path


def unsafe_path(path: str) -> bool:
    """A listed path that would land outside the directory the receiver writes the adapter into."""
    relative = Path(path)
    return relative.is_absolute() or ".." in relative.parts or not relative.parts


def download(account, base_path: str, files: list[dict[str, Any]], into: Path) -> None:
    """Every listed file from `account` (organization.peers, signed) into the directory `into`, each checked
    against its size and SHA-256; the first that fails stops the download with its error."""
    for f in files:
        if unsafe_path(f["path"]):
            raise UserError(f"Account {account.locator} listed an adapter file outside the adapter ('{f['path']}'); "
                            "the model was not fetched.", code=390103, sqlstate="08004")
        peers.download(account, base_path + url_quote(f["path"]), into / Path(f["path"]),
                       sha256=f["sha256"], size=int(f["size"]))


def name_model(directory: Path, model: str, base_model: str, origin: dict[str, Any]) -> None:
    """Make a received adapter this account's model `model`: its studio_adapter.json is how the inference
    servers know the adapter. The sender's own metadata is kept inside it, with where it came from."""
    metadata_file = directory / METADATA_FILE
    try:
        received = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
    except (ValueError, OSError):
        received = None
    if not isinstance(received, dict):  # what another deployment sent: refused, not an internal error
        raise UserError(f"The adapter's {METADATA_FILE} as received is not a JSON object; the model was not used.",
                        code=390103, sqlstate="08004")
    metadata_file.write_text(json.dumps({**received, "model": model, "base_model": base_model,
                                         **origin, "origin_model": received.get("model")}))
