"""FINETUNE('CREATE' | 'SHOW' | 'DESCRIBE' | 'CANCEL'): the one service every entry point calls."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from access import history, privileges
from access.session import Session
from catalog import accountdata, base_models
from catalog.identifiers import QualifiedName, qualify
from errors import UserError, invalid_argument
from jobs import queues, recovery, retention
from jobs.models import CollectedJob, FineTuneJob
from jobs.training_data import check_query
from trainer.config import FINETUNE_OPTIONS
from warehouses.models import Warehouse

log = logging.getLogger(__name__)

MAX_EPOCHS_RANGE = (1, 10)
MAX_BATCH_SIZE = 64


def parse_options(options: str | dict[str, Any] | None) -> dict[str, Any]:
    if options is None or options == "":
        return {}
    if isinstance(options, str):
        try:
            parsed = json.loads(options)
        except json.JSONDecodeError as exc:
            raise invalid_argument(
                f"Invalid options argument: not valid JSON ({exc.msg} at character {exc.pos}). "
                "Pass a JSON object such as '{\"max_epochs\": 3}'."
            ) from exc
    else:
        parsed = options
    if not isinstance(parsed, dict):
        raise invalid_argument("Invalid options argument: expected a JSON object such as '{\"max_epochs\": 3}'.")
    for key, value in parsed.items():
        if key not in FINETUNE_OPTIONS:
            raise invalid_argument(f"Invalid options argument: unknown option '{key}'. "
                                   f"Supported options: {', '.join(FINETUNE_OPTIONS)}.")
        if isinstance(value, bool) or not isinstance(value, FINETUNE_OPTIONS[key]):
            raise invalid_argument(f"Invalid options argument: '{key}' must be a number, got {json.dumps(value)}.")
    if "max_epochs" in parsed:
        low, high = MAX_EPOCHS_RANGE
        if not low <= parsed["max_epochs"] <= high:
            raise invalid_argument(
                f"Invalid options argument: max_epochs must be an integer from {low} to {high}, "
                f"got {parsed['max_epochs']}."
            )
    if "eval_steps" in parsed and parsed["eval_steps"] < 1:
        raise invalid_argument(f"Invalid options argument: eval_steps must be a positive number of training steps, "
                               f"got {parsed['eval_steps']}.")
    if "batch_size" in parsed and not 1 <= parsed["batch_size"] <= MAX_BATCH_SIZE:
        raise invalid_argument(f"Invalid options argument: batch_size must be an integer from 1 to {MAX_BATCH_SIZE} "
                               f"rows per training step, got {parsed['batch_size']}.")
    if "learning_rate" in parsed and not 0 < parsed["learning_rate"] < 1:
        raise invalid_argument(f"Invalid options argument: learning_rate must be between 0 and 1, "
                               f"got {parsed['learning_rate']}.")
    return parsed


def _warehouse(session: Session) -> Warehouse:
    if not session.warehouse:
        raise UserError("No active warehouse selected in the current session. Select an active warehouse "
                          "with the 'use warehouse' command.", code=606, sqlstate="57P03", field="warehouse")
    warehouse = Warehouse.objects.filter(name=session.warehouse).first()
    if warehouse is None:
        raise UserError(f"Warehouse '{session.warehouse}' does not exist or not authorized.",
                          code=2003, sqlstate="02000", field="warehouse")
    return warehouse


def create(
    session: Session,
    name: str,
    base_model: str,
    training_query: str,
    validation_query: str | None = None,
    options: str | dict[str, Any] | None = None,
) -> str:
    """Validate everything a job needs, check the session's privileges, record it PENDING and queue it;
    returns the job id. The attempt, refused or not, goes into the access history.

    A refusal names the argument it concerns in its `field`: FINETUNE's own ("name", "base_model",
    "training_data", "validation_data", "options"), or a finer one: "schema" (the schema part of the
    name), "prompt" / "completion" (a column of the training query), "role" / "warehouse" (the session's)."""
    with history.recorded(session, "FINETUNE CREATE", "MODEL", _target_label(session, name)):
        return _create(session, name, base_model, training_query, validation_query, options)


def _target_label(session: Session, name: Any) -> str:
    try:
        return str(qualify(name, session.database, session.schema, what="model"))
    except (UserError, TypeError, AttributeError):
        return str(name)[:767]


@contextmanager
def _concerning(field: str) -> Iterator[None]:
    try:
        yield
    except UserError as error:
        raise error.concerning(field)


def _create(session: Session, name: str, base_model: str, training_query: str, validation_query: str | None,
            options: str | dict[str, Any] | None) -> str:
    _require_text("model name", name, field="name")
    _require_text("base model", base_model, field="base_model")
    _require_text("training query", training_query, field="training_data")
    if validation_query is not None:
        _require_text("validation query", validation_query, field="validation_data")
    if options is not None and not isinstance(options, (str, dict)):
        raise invalid_argument(
            "Invalid options argument: expected a JSON object in a string, e.g. '{\"max_epochs\": 3}'.", field="options")
    with _concerning("name"):
        target: QualifiedName = qualify(name, session.database, session.schema, what="model")
    with _concerning("role"):
        privileges.require_cortex_user(session, "FINETUNE")
    with _concerning("base_model"):
        base = base_models.get_installed(base_model)
        base.require_enabled(finetune=True)
    with _concerning("options"):
        parsed_options = parse_options(options)
    with _concerning("schema"):
        accountdata.get_schema(target.database, target.schema)
    warehouse = _warehouse(session)
    with _concerning("warehouse"):
        privileges.require_warehouse_usage(session, warehouse.name)
    with _concerning("schema"):
        privileges.require_create_in_schema(session, "MODEL", target.database, target.schema)
    # Each query runs in a sandbox that checks every name it reads before reading anything.
    with _concerning("training_data"):
        check_query(session, training_query, purpose="training")
    if validation_query:
        try:
            check_query(session, validation_query, purpose="validation")
        except UserError as error:
            # Its PROMPT and COMPLETION must be the training query's: a missing or non-text one is fixed
            # with other validation data, not with another column, so this argument is the one to name.
            error.field = "validation_data"
            raise

    with transaction.atomic():
        job = FineTuneJob.objects.create(
            base_model=base.name,
            database=target.database,
            schema=target.schema,
            requested_name=target.name,
            training_data=training_query,
            query_database=session.database or "",
            query_schema=session.schema or "",
            validation_data=validation_query or "",
            options=parsed_options,
            warehouse=warehouse.name,
            role=session.role,
            user=session.user if session.user is not None and session.user.pk else None,
        )
        queues.enqueue_on_commit(job, warehouse)
    log.info("created fine-tuning job %s for %s on %s", job.id, target, warehouse.name)
    return job.id


def _require_text(what: str, value: Any, *, field: str) -> None:
    if not isinstance(value, str):
        raise invalid_argument(f"Invalid argument for FINETUNE: the {what} must be a string, got {json.dumps(value)}.",
                               field=field)


def visible_jobs(session: Session):
    """The jobs a session may see: those created by one of its roles (ACCOUNTADMIN: every job)."""
    roles = privileges.visible_job_roles(session)
    jobs = FineTuneJob.objects.all()
    return jobs if roles is None else jobs.filter(role__in=roles)


def collected(session: Session, job_id: str) -> CollectedJob | None:
    """What is left of a job this session could have seen, once retention collected it."""
    roles = privileges.visible_job_roles(session)
    found = CollectedJob.objects.filter(pk=str(job_id).strip())
    return (found if roles is None else found.filter(role__in=roles)).first()


def _job(session: Session, job_id: str) -> FineTuneJob:
    # Another role's job is refused exactly like a missing one, so ids cannot be probed; so is another
    # role's collected job.
    job = visible_jobs(session).filter(pk=str(job_id).strip()).first()
    if job is None:
        gone = collected(session, job_id)
        if gone is not None:
            raise UserError(retention.collected_message(gone), code=2003, sqlstate="02000")
        raise UserError(f"Fine-tuning job '{job_id}' does not exist or not authorized.", code=2003, sqlstate="02000")
    return job


def show(session: Session) -> list[dict[str, Any]]:
    with history.recorded(session, "FINETUNE SHOW"):
        privileges.require_cortex_user(session, "FINETUNE")
        return [job.show_row() for job in visible_jobs(session)]


def describe(session: Session, job_id: str) -> dict[str, Any]:
    with history.recorded(session, "FINETUNE DESCRIBE", "JOB", str(job_id)[:767]):
        privileges.require_cortex_user(session, "FINETUNE")
        return _job(session, job_id).describe()


def cancel(session: Session, job_id: str) -> str:
    with history.recorded(session, "FINETUNE CANCEL", "JOB", str(job_id)[:767]):
        privileges.require_cortex_user(session, "FINETUNE")
        return _cancel(session, job_id)


def _cancel(session: Session, job_id: str) -> str:
    job = _job(session, job_id)
    if job.is_final:
        raise UserError(f"Fine-tuning job '{job.id}' has already finished with status {job.status}; "
                          "only PENDING or IN_PROGRESS jobs can be cancelled.", code=100357, sqlstate="22023")
    was_running = job.status == FineTuneJob.Status.IN_PROGRESS
    if not job.transition((FineTuneJob.Status.PENDING, FineTuneJob.Status.IN_PROGRESS),
                          FineTuneJob.Status.CANCELLED, finished_on=timezone.now(), phase="cancelled"):
        job.refresh_from_db()
        raise UserError(f"Fine-tuning job '{job.id}' finished with status {job.status} before it could be cancelled.")
    queues.stop(job, was_running=was_running)
    if not was_running:  # a queued job may hold a checkpoint from an interrupted try; nobody needs it now
        recovery.discard_files(job.id)
    return f"Canceled Cortex Fine-tuning job: {job.id}"
