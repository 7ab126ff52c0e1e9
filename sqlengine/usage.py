"""SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FINE_TUNING_USAGE_HISTORY, built from the fine-tuning jobs.

Snowflake's view has one row per base model and hour in which jobs terminated: START_TIME and END_TIME
bound that hour, MODEL_NAME is the base model, TOKENS the trained tokens billed (input tokens x epochs)
and TOKEN_CREDITS = TOKENS / 1e6 x the base model's training credits per million tokens. A query that
names the view gets it as a table of an in-memory SNOWFLAKE database attached to its DuckDB connection.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import duckdb
from sqlglot import exp

from catalog.models import BaseModel
from jobs.models import FineTuneJob

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


def references_view(tree: exp.Expression) -> bool:
    for table in tree.find_all(exp.Table):
        if (table.catalog.upper(), table.db.upper(), table.name.upper()) == (DATABASE, SCHEMA, VIEW):
            return True
    return False


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


def attach(con: duckdb.DuckDBPyConnection) -> None:
    """Attach the SNOWFLAKE database with the view filled from the metadata database."""
    con.execute(f'ATTACH \':memory:\' AS "{DATABASE}"')
    con.execute(f'CREATE SCHEMA "{DATABASE}"."{SCHEMA}"')
    table = f'"{DATABASE}"."{SCHEMA}"."{VIEW}"'
    con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in COLUMNS)})")
    data = rows()
    if data:
        con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", data)
