"""Registering a trained adapter as a model in a schema, finding models by name, and DROP MODEL."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from access import privileges
from access.session import Session
from catalog import accountdata
from catalog.identifiers import QualifiedName, qualify
from errors import UserError
from inference import deployment
from models_registry.adapter_files import METADATA_FILE
from models_registry.models import FineTunedModel


def adapters_dir() -> Path:
    return settings.MODEL_STORE / "adapters"


def staging_dir(job_id: str) -> Path:
    return settings.MODEL_STORE / "staging" / job_id


def _free_name(schema, requested: str) -> str:
    """Snowflake appends a suffix to the later model's name when the name is taken."""
    taken = set(FineTunedModel.objects.filter(schema=schema, name__startswith=requested).values_list("name", flat=True))
    if requested not in taken:
        return requested
    n = 1
    while f"{requested}_{n}" in taken:
        n += 1
    return f"{requested}_{n}"


def name_if_finished_now(database: str, schema: str, requested: str) -> str:
    """The name a model requested as `requested` in database.schema would be registered under if its job
    finished now: `requested`, or `requested_1`, `_2`, … while those are taken."""
    from catalog.models import Schema

    found = Schema.objects.filter(database__name=database, name=schema).first()
    return requested if found is None else _free_name(found, requested)


def register(job, staging: Path, metrics: dict[str, Any]) -> FineTunedModel:
    """Move a finished adapter into the store and record it; the last step of a successful job."""
    schema = accountdata.get_schema(job.database, job.schema)
    target = adapters_dir() / job.id
    with transaction.atomic():
        # Two jobs finishing at once with one requested name: on PostgreSQL both would pick the same free
        # name and the later insert fail on the unique constraint. Locking the schema row makes the later
        # wait and then see the earlier's model (SQLite's IMMEDIATE transactions serialize them anyway).
        type(schema).objects.select_for_update().filter(pk=schema.pk).first()
        name = _free_name(schema, job.requested_name)
        qualified = str(QualifiedName(job.database, job.schema, name))
        meta_path = staging / METADATA_FILE
        metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        metadata.update({"model": qualified, "base_model": job.base_model, "job_id": job.id})
        meta_path.write_text(json.dumps(metadata, indent=2, sort_keys=True))
        model = FineTunedModel.objects.create(
            schema=schema,
            name=name,
            base_model=job.base_model,
            owner_role=job.role,
            job=job,
            adapter_path=str(target),
            metrics=metrics,
        )
        # The rename is the commit point on disk: the inference server only ever sees whole adapters.
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return model


def resolve(name: str, database: str | None, schema: str | None) -> FineTunedModel:
    """The fine-tuned model a (possibly unqualified) name refers to in this session."""
    target = qualify(name, database, schema, what="model")
    model = (
        FineTunedModel.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                      name=target.name)
        .select_related("schema__database")
        .first()
    )
    if model is None:
        raise UserError(f"Model '{target}' does not exist or not authorized.", code=2003, sqlstate="02000")
    return model


def drop(session: Session, target: QualifiedName, *, if_exists: bool = False) -> bool:
    """DROP MODEL: its owner only; its adapter's files go with it, once no inference server serves it."""
    model = FineTunedModel.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                          name=target.name).first()
    if model is None:
        if if_exists:
            return False
        raise UserError(f"SQL compilation error: Model '{target}' does not exist or not authorized.",
                        code=2003, sqlstate="02000")
    privileges.require_ownership(session, "MODEL", str(target))
    adapter = model.adapter_dir
    model.delete()
    # Deleted first, so no COMPLETE routes to it meanwhile; undeployed before its files go. A server that
    # is down is logged by undeploy() and does not stop the drop.
    deployment.undeploy(model)
    if model.adapter_path:
        shutil.rmtree(adapter, ignore_errors=True)
    return True
