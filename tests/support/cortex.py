"""Helpers the end-to-end tests share: run SQL as a user would, wait for a job."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from access.session import Session
from catalog import accountdata
from sqlengine.executor import Executor


def admin_session(**kw: Any) -> Session:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    return Session(user=user, role="ACCOUNTADMIN", warehouse=kw.pop("warehouse", "COMPUTE_WH"), **kw)


def sql_value(session: Session, text: str) -> Any:
    """The single value the last statement returns, as `SELECT SNOWFLAKE.CORTEX...` prints it."""
    result = Executor(session).execute(text)[-1]
    return result.rows[0][0]


def sql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_table(tmp_path: Path, database: str, table: str, rows: list[dict[str, Any]]) -> None:
    if not accountdata.Database.objects.filter(name=database).exists():
        accountdata.create_database(database)
    source = tmp_path / f"{table.lower()}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    accountdata.load_table(database, accountdata.DEFAULT_SCHEMA, table, source, replace=True)


def wait_for_status(job_id: str, statuses: tuple[str, ...], timeout: float, stack=None) -> dict[str, Any]:
    from jobs import finetune

    deadline = time.monotonic() + timeout
    while True:
        described = finetune.describe(admin_session(), job_id)
        if described["status"] in statuses:
            return described
        if time.monotonic() > deadline:
            logs = stack.log("worker") if stack else ""
            raise AssertionError(f"job {job_id} still {described['status']} after {timeout} s: {described}\n{logs}")
        time.sleep(0.25)
