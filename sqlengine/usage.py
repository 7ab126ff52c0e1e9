"""The SNOWFLAKE.ACCOUNT_USAGE views: CORTEX_FINE_TUNING_USAGE_HISTORY, built from the fine-tuning
jobs, and CORTEX_ACCESS_HISTORY, built from the access history (access.models.AccessEvent).

Snowflake's view has one row per base model and hour in which jobs terminated: START_TIME and END_TIME
bound that hour, MODEL_NAME is the base model, TOKENS the trained tokens billed (input tokens x epochs)
and TOKEN_CREDITS = TOKENS / 1e6 x the base model's training credits per million tokens. A query that
names the view gets it as a table of an in-memory SNOWFLAKE database attached to its DuckDB connection.

CORTEX_ACCESS_HISTORY has one row per FINETUNE, COMPLETE, GRANT or REVOKE: who, with which role, on
what, and its outcome (SUCCESS, REFUSED, FAILED). Only roles that inherit SECURITYADMIN or ACCOUNTADMIN
read it.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import numpy as np
from sqlglot import exp

from access.models import AccessEvent
from access.privileges import effective_roles
from access.session import Session
from catalog.models import BaseModel
from jobs.models import FineTuneJob
from studio.errors import StudioError

DATABASE = "SNOWFLAKE"
SCHEMA = "ACCOUNT_USAGE"
VIEW = "CORTEX_FINE_TUNING_USAGE_HISTORY"
COLUMNS = (  # Snowflake's column types: TIMESTAMP_LTZ, TIMESTAMP_LTZ, VARCHAR, NUMBER, NUMBER
    ("START_TIME", "TIMESTAMP"),  # UTC; a naive TIMESTAMP because DuckDB needs pytz to return TIMESTAMPTZ
    ("END_TIME", "TIMESTAMP"),
    ("MODEL_NAME", "VARCHAR"),
    ("TOKEN_CREDITS", "DECIMAL(38, 9)"),
    ("TOKENS", "BIGINT"),
)


ACCESS_VIEW = "CORTEX_ACCESS_HISTORY"
ACCESS_COLUMNS = (
    ("EVENT_TIME", "TIMESTAMP"),  # UTC, naive like START_TIME above
    ("USER_NAME", "VARCHAR"),
    ("ROLE_NAME", "VARCHAR"),
    ("ACTION", "VARCHAR"),
    ("OBJECT_TYPE", "VARCHAR"),
    ("OBJECT_NAME", "VARCHAR"),
    ("OUTCOME", "VARCHAR"),
    ("MESSAGE", "VARCHAR"),
    ("ENTRY_POINT", "VARCHAR"),
)
ACCESS_READERS = ("SECURITYADMIN", "ACCOUNTADMIN")


def references_view(tree: exp.Expression, session: Session) -> list[str]:
    """The account-usage views the query names (empty when none), after refusing a session that may
    not read one of them."""
    names = sorted({table.name.upper() for table in tree.find_all(exp.Table)
                    if (table.catalog.upper(), table.db.upper()) == (DATABASE, SCHEMA)
                    and table.name.upper() in (VIEW, ACCESS_VIEW)})
    if ACCESS_VIEW in names and not set(ACCESS_READERS) & effective_roles(session.role or "PUBLIC"):
        raise StudioError(f"Insufficient privileges to operate on view '{DATABASE}.{SCHEMA}.{ACCESS_VIEW}'",
                          code=3001, sqlstate="42501")
    return names


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0, tzinfo=None)


def rows() -> list[tuple[datetime, datetime, str, Decimal, int]]:
    """The view's rows, oldest hour first: every job that terminated after training some tokens."""
    rates = dict(BaseModel.objects.values_list("name", "training_credits_per_million_tokens"))
    tokens: dict[tuple[datetime, str], int] = defaultdict(int)
    jobs = FineTuneJob.objects.filter(finished_on__isnull=False, trained_tokens__gt=0)
    for finished_on, base_model, trained in jobs.values_list("finished_on", "base_model", "trained_tokens"):
        tokens[(_hour(finished_on), base_model)] += trained
    out = []
    for (start, model), count in sorted(tokens.items()):
        credits = Decimal(count) / Decimal(1_000_000) * Decimal(str(rates.get(model, 0.0)))
        out.append((start, start + timedelta(hours=1), model, credits.quantize(Decimal("0.000000001")), count))
    return out


def access_columns() -> dict[str, np.ndarray]:
    """CORTEX_ACCESS_HISTORY's rows, oldest first, column by column: DuckDB scans numpy arrays in
    milliseconds where inserting row by row takes seconds for ten thousand events."""
    fields = ("at", "user_name", "role", "action", "object_type", "object_name", "outcome", "message", "entry_point")
    events = list(AccessEvent.objects.order_by("at", "pk").values_list(*fields))
    columns: dict[str, np.ndarray] = {}
    for i, (name, _) in enumerate(ACCESS_COLUMNS):
        if i == 0:
            columns[name] = np.array([e[0].astimezone(timezone.utc).replace(tzinfo=None) for e in events],
                                     dtype="datetime64[us]")
        else:
            columns[name] = np.array([e[i] for e in events], dtype=object)
    return columns


def attach(con: duckdb.DuckDBPyConnection, views: list[str]) -> None:
    """Attach the SNOWFLAKE database with `views` filled from the metadata database."""
    con.execute(f'ATTACH \':memory:\' AS "{DATABASE}"')
    con.execute(f'CREATE SCHEMA "{DATABASE}"."{SCHEMA}"')
    if VIEW in views:
        table = f'"{DATABASE}"."{SCHEMA}"."{VIEW}"'
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in COLUMNS)})")
        data = rows()
        if data:
            con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", data)
    if ACCESS_VIEW in views:
        table = f'"{DATABASE}"."{SCHEMA}"."{ACCESS_VIEW}"'
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in ACCESS_COLUMNS)})")
        columns = access_columns()
        if len(columns["EVENT_TIME"]):
            con.register("_access_history_rows", columns)
            try:
                names = ", ".join(name for name, _ in ACCESS_COLUMNS)
                con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _access_history_rows")
            finally:
                con.unregister("_access_history_rows")
