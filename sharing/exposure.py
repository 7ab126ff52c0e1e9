"""What a share shows the account it was shared with, over the federation API: the manifest of its
models (base model, adapter files with sizes and SHA-256) and the files themselves.

Asked afresh on every request, so removing the account, revoking the model or dropping the share
stops the consumer's next request. A refusal uses Snowflake's words for a share that went away, and
never says whether the share exists for some other account.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from access import privileges
from catalog.identifiers import split_parts
from errors import UserError
from models_registry.models import FineTunedModel
from organization.models import Account
from sharing.models import Share

GONE = ("Shared database is no longer available for use. It will need to be re-created if and when the "
        "publisher makes it available again.")


def share_for(peer: Account, share_name: str) -> Share:
    """The share by its stored name (the consumer recorded it so), when it names `peer`."""
    share = Share.objects.filter(name=share_name, consumers__account=peer).first()
    if share is None:
        raise UserError(GONE, code=3030, sqlstate="02000", refused=True)
    return share


def _granted(share: Share) -> set[tuple[str, str]]:
    return set(share.objects_granted.values_list("object_type", "object_name"))


def _shared_models(share: Share) -> list[FineTunedModel]:
    granted = _granted(share)
    found = []
    for object_type, name in granted:
        if object_type != "MODEL":
            continue
        database, schema, model = split_parts(name)
        # A model reaches the consumer only with its database and schema, as it was granted.
        if ("DATABASE", privileges.key(database)) not in granted or \
                ("SCHEMA", privileges.key(database, schema)) not in granted:
            continue
        row = FineTunedModel.objects.filter(schema__database__name=database, schema__name=schema, name=model) \
            .select_related("schema__database").first()
        if row is not None:
            found.append(row)
    return sorted(found, key=lambda m: m.qualified_name)


def _file_paths(model: FineTunedModel) -> list[Path]:
    return sorted(p for p in model.adapter_dir.rglob("*") if p.is_file())


def adapter_files(model: FineTunedModel) -> list[dict[str, Any]]:
    """Every file of the adapter directory, by relative path, with its size and SHA-256."""
    root = model.adapter_dir
    files = []
    for path in _file_paths(model):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        files.append({"path": path.relative_to(root).as_posix(), "size": path.stat().st_size,
                      "sha256": digest.hexdigest()})
    return files


def manifest(share: Share) -> dict[str, Any]:
    granted = _granted(share)
    database = next((name for kind, name in granted if kind == "DATABASE"), None)
    schemas = sorted(split_parts(name)[1] for kind, name in granted if kind == "SCHEMA")
    return {
        "share": share.name,
        "database": split_parts(database)[0] if database else None,
        "schemas": schemas,
        "models": [{"schema": m.schema.name, "name": m.name, "base_model": m.base_model,
                    "files": adapter_files(m)} for m in _shared_models(share)],
    }


def model_file(share: Share, schema: str, model: str, path: str) -> Path:
    """One adapter file of a shared model, by the relative path its manifest lists, and only that."""
    for row in _shared_models(share):
        if row.schema.name == schema and row.name == model:
            # The manifest's paths, without hashing every file again for each one fetched.
            listed = {p.relative_to(row.adapter_dir).as_posix() for p in _file_paths(row)}
            if path in listed:
                return row.adapter_dir / path
            raise UserError(f"Model {row.qualified_name} has no file '{path}'.", code=2003, sqlstate="02000",
                            refused=True)
    raise UserError(f"Model '{schema}.{model}' does not exist or not authorized.",
                    code=2003, sqlstate="02000", refused=True)
