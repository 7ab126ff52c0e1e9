"""The SNOWFLAKE.ACCOUNT_USAGE views: CORTEX_FINE_TUNING_USAGE_HISTORY, built from the fine-tuning
jobs, and CORTEX_ACCESS_HISTORY, built from the access history (access.models.AccessEvent).

Snowflake's view has one row per base model and hour in which jobs terminated: START_TIME and END_TIME
bound that hour, MODEL_NAME is the base model, TOKENS the trained tokens billed (input tokens x epochs)
and TOKEN_CREDITS = TOKENS / 1e6 x the base model's training credits per million tokens. A query that
names a view gets it as a temporary table of its own sandbox (sandbox/box.py), filled when it runs.

CORTEX_ACCESS_HISTORY has one row per FINETUNE, COMPLETE, GRANT or REVOKE: who, with which role, on
what, and its outcome (SUCCESS, REFUSED, FAILED). Only roles that inherit SECURITYADMIN or ACCOUNTADMIN
read it.

COMPLETE's token usage (inference.models.CompletionUsage) shows in two views named as Snowflake's:
CORTEX_FUNCTIONS_USAGE_HISTORY, SQL COMPLETE by hour, model and warehouse (TOKENS = input + output
tokens; TOKEN_CREDITS is NULL: this studio has no inference credit rates), and
CORTEX_REST_API_USAGE_HISTORY, one row per finished request to the HTTP APIs (/v1/chat/completions and
/api/v2/cortex/inference:complete) with its user. Both name fine-tuned models other roles may not see,
and the second names users, so both are read like the access history: SECURITYADMIN and ACCOUNTADMIN.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np

from access.models import AccessEvent
from catalog.identifiers import QualifiedName
from catalog.models import BaseModel
from errors import UserError
from inference.models import CompletionUsage
from jobs.models import FineTuneJob
from sandbox.names import object_not_found

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

FUNCTIONS_VIEW = "CORTEX_FUNCTIONS_USAGE_HISTORY"
FUNCTIONS_COLUMNS = (
    ("START_TIME", "TIMESTAMP"),  # UTC, naive like START_TIME above
    ("END_TIME", "TIMESTAMP"),
    ("FUNCTION_NAME", "VARCHAR"),
    ("MODEL_NAME", "VARCHAR"),
    ("WAREHOUSE_ID", "BIGINT"),
    ("TOKENS", "BIGINT"),
    ("TOKEN_CREDITS", "DECIMAL(38, 9)"),
)

REST_VIEW = "CORTEX_REST_API_USAGE_HISTORY"
REST_COLUMNS = (  # Snowflake's eight columns, then this studio's: who, through which API, and the outcome
    ("START_TIME", "TIMESTAMP"),  # the request's start and end, UTC
    ("END_TIME", "TIMESTAMP"),
    ("REQUEST_ID", "VARCHAR"),
    ("MODEL_NAME", "VARCHAR"),
    ("TOKENS", "BIGINT"),
    ("TOKENS_GRANULAR", "JSON"),  # {"input": N, "output": M}
    ("USER_ID", "VARCHAR"),
    ("INFERENCE_REGION", "VARCHAR"),
    ("USER_NAME", "VARCHAR"),
    ("ROLE_NAME", "VARCHAR"),
    ("BASE_MODEL", "VARCHAR"),
    ("API", "VARCHAR"),  # OPENAI or CORTEX_REST
    ("INPUT_TOKENS", "BIGINT"),
    ("OUTPUT_TOKENS", "BIGINT"),
    ("STATUS", "VARCHAR"),  # SUCCESS, FAILED, CANCELLED (the client closed the stream)
)
INFERENCE_REGION = "LOCAL"  # everything is inferred on this studio's own servers
# Views that name users or any role's models: only ACCESS_READERS (and roles inheriting them) read them.
RESTRICTED_VIEWS = (ACCESS_VIEW, FUNCTIONS_VIEW, REST_VIEW)


def columns_and_rows(roles: set[str], name: QualifiedName):
    """A view's (column, DuckDB type) pairs and its rows (tuples, or one array per column), after
    refusing a session whose roles may not read it."""
    if name.schema != SCHEMA or name.name not in VIEWS:
        raise object_not_found(name)
    if name.name in RESTRICTED_VIEWS and not set(ACCESS_READERS) & roles:
        raise UserError(f"Insufficient privileges to operate on view '{DATABASE}.{SCHEMA}.{name.name}'",
                          code=3001, sqlstate="42501")
    columns, produce = VIEWS[name.name]
    return columns, produce()


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
    """CORTEX_ACCESS_HISTORY's rows, oldest first, column by column (see fill)."""
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


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def functions_rows() -> list[tuple]:
    """CORTEX_FUNCTIONS_USAGE_HISTORY: SQL COMPLETE's tokens by the hour its calls ended, model and
    warehouse, oldest hour first."""
    from warehouses.models import Warehouse

    warehouse_ids = dict(Warehouse.objects.values_list("name", "pk"))
    tokens: dict[tuple[datetime, str, str], int] = defaultdict(int)
    calls = CompletionUsage.objects.filter(entry_point=CompletionUsage.EntryPoint.SQL,
                                           status=CompletionUsage.Status.SUCCESS)
    for started_on, duration_ms, model, warehouse, i, o in calls.values_list(
            "started_on", "duration_ms", "model_name", "warehouse", "input_tokens", "output_tokens"):
        tokens[(_hour(started_on + timedelta(milliseconds=duration_ms)), model, warehouse)] += i + o
    return [(start, start + timedelta(hours=1), "COMPLETE", model, warehouse_ids.get(warehouse), count, None)
            for (start, model, warehouse), count in sorted(tokens.items())]


def rest_columns() -> dict[str, np.ndarray]:
    """CORTEX_REST_API_USAGE_HISTORY's rows, oldest first, column by column (see access_columns)."""
    calls = list(CompletionUsage.objects.filter(entry_point__in=(CompletionUsage.EntryPoint.OPENAI,
                                                                 CompletionUsage.EntryPoint.CORTEX_REST))
                 .exclude(status=CompletionUsage.Status.RUNNING).order_by("started_on", "pk")
                 .values_list("started_on", "duration_ms", "request_id", "model_name", "input_tokens",
                              "output_tokens", "user_id", "user_name", "role", "base_model", "entry_point", "status"))
    starts = [_naive_utc(c[0]) for c in calls]
    values = {
        "START_TIME": starts,
        "END_TIME": [start + timedelta(milliseconds=c[1]) for start, c in zip(starts, calls)],
        "REQUEST_ID": [c[2] for c in calls],
        "MODEL_NAME": [c[3] for c in calls],
        "TOKENS": [c[4] + c[5] for c in calls],
        "TOKENS_GRANULAR": [json.dumps({"input": c[4], "output": c[5]}) for c in calls],
        "USER_ID": [None if c[6] is None else str(c[6]) for c in calls],
        "INFERENCE_REGION": [INFERENCE_REGION] * len(calls),
        "USER_NAME": [c[7] for c in calls],
        "ROLE_NAME": [c[8] for c in calls],
        "BASE_MODEL": [c[9] for c in calls],
        "API": [c[10].upper() for c in calls],
        "INPUT_TOKENS": [c[4] for c in calls],
        "OUTPUT_TOKENS": [c[5] for c in calls],
        "STATUS": [c[11] for c in calls],
    }
    columns: dict[str, np.ndarray] = {}
    for name, kind in REST_COLUMNS:
        if kind == "TIMESTAMP":
            columns[name] = np.array(values[name], dtype="datetime64[us]")
        elif kind == "BIGINT":
            columns[name] = np.array(values[name], dtype=np.int64)
        else:
            columns[name] = np.array(values[name], dtype=object)
    return columns


VIEWS = {VIEW: (COLUMNS, rows), ACCESS_VIEW: (ACCESS_COLUMNS, access_columns),
         FUNCTIONS_VIEW: (FUNCTIONS_COLUMNS, functions_rows), REST_VIEW: (REST_COLUMNS, rest_columns)}
