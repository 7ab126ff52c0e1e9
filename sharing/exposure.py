"""What a share shows the account it was shared with, over the federation API: the manifest of its
models (base model, adapter files with sizes and SHA-256) and the files themselves.

Asked afresh on every request, so removing the account, revoking the model or dropping the share
stops the consumer's next request. A refusal uses Snowflake's words for a share that went away, and
never says whether the share exists for some other account.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from access import privileges
from catalog.identifiers import split_parts
from errors import UserError
from models_registry import adapter_files
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


def manifest(share: Share) -> dict[str, Any]:
    granted = _granted(share)
    database = next((name for kind, name in granted if kind == "DATABASE"), None)
    schemas = sorted(split_parts(name)[1] for kind, name in granted if kind == "SCHEMA")
    return {
        "share": share.name,
        "database": split_parts(database)[0] if database else None,
        "schemas": schemas,
        "models": [{"schema": m.schema.name, "name": m.name, "base_model": m.base_model,
                    "files": adapter_files.listed(m)} for m in _shared_models(share)],
    }


def model_file(share: Share, schema: str, model: str, path: str) -> Path:
    """One adapter file of a shared model, by the relative path its manifest lists, and only that."""
    for row in _shared_models(share):
        if row.schema.name == schema and row.name == model:
            return adapter_files.one(row, path)
    raise UserError(f"Model '{schema}.{model}' does not exist or not authorized.",
                    code=2003, sqlstate="02000", refused=True)
