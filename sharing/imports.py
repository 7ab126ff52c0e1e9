"""The consumer's side of a share: CREATE DATABASE x FROM SHARE org.acct.s, and what COMPLETE asks of a
model in such a database before it answers.

The database mirrors what the share lists: its schemas and models (rows only: no table of the provider
ever comes here). Before each COMPLETE on a shared model the provider is asked again, so a revoke, a
removed account or a dropped share stops the next call; the adapter is fetched once per version (the
manifest's checksums name it), verified file by file, and cached in the model store; a provider that
cannot be reached is an error, never another model's answer.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from django.conf import settings
from django.db import transaction

from access import history, privileges
from access.session import Session
from catalog import accountdata
from catalog.identifiers import normalize, quote
from catalog.models import Database, Schema
from errors import UserError
from models_registry import adapter_files, registry
from models_registry.models import Deployment, FineTunedModel
from organization import accounts, peers
from organization.names import split_object
from sharing.models import ImportedDatabase


def _share_path(imported: ImportedDatabase) -> str:
    return f"shares/{url_quote(imported.share_name, safe='')}"


def shared_dir() -> Path:
    """Where shared adapters are fetched before they are complete."""
    return settings.MODEL_STORE / "shared"


def create_from_share(session: Session, text: str, share_text: str) -> str:
    name = normalize(text)
    with history.recorded(session, "CREATE DATABASE FROM SHARE", "DATABASE", name):
        if not privileges.has_any_role(session, privileges.ACCOUNTADMIN):
            raise UserError("Insufficient privileges to operate on account: importing a share is ACCOUNTADMIN's "
                            "(IMPORT SHARE).", code=privileges.INSUFFICIENT_PRIVILEGES, sqlstate="42501")
        provider_name, (share,) = split_object(share_text, 1, what="share")
        provider = accounts.registered(provider_name)
        imported = ImportedDatabase(provider=provider, share_name=share)
        manifest = peers.get_json(provider, _share_path(imported))
        if Database.objects.filter(name=name).exists():
            raise UserError(f"SQL compilation error: Object '{name}' already exists.", code=2002, sqlstate="42710")
        with transaction.atomic():
            database = accountdata.create_database(quote(name), session.role or "ACCOUNTADMIN")
            imported.database = database
            imported.save()
            _mirror(imported, manifest, session.role or "ACCOUNTADMIN")
        return f"Database {name} successfully created."


def _mirror(imported: ImportedDatabase, manifest: dict[str, Any], owner: str) -> None:
    """Schemas and models as the share lists them now; a model no longer listed goes."""
    database = imported.database
    for schema_name in manifest.get("schemas", []):
        Schema.objects.get_or_create(database=database, name=schema_name, defaults={"owner_role": owner})
    listed = set()
    for model in manifest.get("models", []):
        schema = Schema.objects.get(database=database, name=model["schema"])
        listed.add((schema.pk, model["name"]))
        FineTunedModel.objects.get_or_create(
            schema=schema, name=model["name"],
            defaults={"base_model": model["base_model"], "owner_role": owner, "adapter_path": "",
                      "metrics": {"shared_from": f"{imported.provider.locator}.{imported.share_name}"}})
    for model in FineTunedModel.objects.filter(schema__database=database):
        if (model.schema_id, model.name) not in listed:
            model.delete()


def imported_of(model: FineTunedModel) -> ImportedDatabase | None:
    return ImportedDatabase.objects.filter(database_id=model.schema.database_id).select_related("provider").first()


def refresh_model(model: FineTunedModel) -> FineTunedModel:
    """Ask the provider whether `model` is still shared with this account and make its adapter, verified
    against the provider's checksums, the one the model serves. Raises the provider's refusal, or the
    unreachable error; a model the share no longer lists reads as one that does not exist."""
    imported = imported_of(model)
    if imported is None:
        return model
    manifest = peers.get_json(imported.provider, _share_path(imported))
    entry = next((m for m in manifest.get("models", [])
                  if m["schema"] == model.schema.name and m["name"] == model.name), None)
    if entry is None:
        raise UserError(f"Model '{model.qualified_name}' does not exist or not authorized.", code=2003,
                        sqlstate="02000", refused=True)
    # Where the inference servers find adapters (the registry's adapters directory), named by this model
    # and the version's checksums: a new version is a new directory, never a file changed under a server.
    target = registry.adapters_dir() / f"shared-{model.pk}-{adapter_files.version(entry['files'])}"
    if not (target / ".complete").exists():
        _fetch(imported, entry, target, model)
    if model.adapter_path != str(target) or model.base_model != entry["base_model"]:
        previous = model.adapter_path
        with transaction.atomic():
            FineTunedModel.objects.filter(pk=model.pk).update(adapter_path=str(target), base_model=entry["base_model"])
            # A new version of the adapter must be loaded again where the old one was.
            Deployment.objects.filter(model_id=model.pk).delete()
        model.refresh_from_db()
        if previous and Path(previous).name.startswith(f"shared-{model.pk}-"):
            shutil.rmtree(previous, ignore_errors=True)
    return model


def _fetch(imported: ImportedDatabase, entry: dict[str, Any], target: Path, model: FineTunedModel) -> None:
    """Every file into a fresh directory outside the adapters directory (no server may find it half
    written), then one rename into it: an interrupted or corrupted fetch leaves no adapter behind, and
    the next COMPLETE fetches again. The verified studio_adapter.json then names this account's model,
    which is how the inference servers know the adapter; the provider's own metadata is kept inside it."""
    shared_dir().mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=shared_dir(), prefix=".fetch-"))
    try:
        base = f"{_share_path(imported)}/models/{url_quote(entry['schema'], safe='')}/" \
               f"{url_quote(entry['name'], safe='')}/files/"
        adapter_files.download(imported.provider, base, entry["files"], partial)
        adapter_files.name_model(partial, model.qualified_name, entry["base_model"],
                                 {"shared_from": {"account": imported.provider.locator, "share": imported.share_name}})
        (partial / ".complete").write_text("")
        try:
            partial.rename(target)
        except OSError:
            if not (target / ".complete").exists():  # not another caller's finished fetch
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
