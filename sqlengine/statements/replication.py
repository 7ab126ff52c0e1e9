"""Database replication: ALTER DATABASE … ENABLE | DISABLE REPLICATION | FAILOVER [TO ACCOUNTS …], CREATE DATABASE …
AS REPLICA OF org.acct.db, ALTER DATABASE … REFRESH, ALTER DATABASE … SET | UNSET REPLICATION_SCHEDULE,
ALTER DATABASE … PRIMARY and SHOW REPLICATION DATABASES, on replication/. sqlglot reads them all as
Commands; asked before the catalog's module, which would read AS REPLICA OF as a plain CREATE DATABASE."""
from __future__ import annotations

import re

from sqlglot import exp

from replication import databases, promotion
from sqlengine import show
from sqlengine.results import Result, status
from sqlengine.statements.grants import Tokens

SHOW_COLUMNS = ["region_group", "snowflake_region", "created_on", "account_name", "name", "comment", "is_primary",
                "primary", "replication_allowed_to_accounts", "failover_allowed_to_accounts", "organization_name",
                "account_locator", "replication_schedule", "last_refreshed_on", "next_scheduled_refresh",
                "last_refresh_error"]
SHOW_TYPES = ["TEXT", "TEXT", "TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "BOOLEAN", "TEXT", "TEXT", "TEXT", "TEXT",
              "TEXT", "TEXT", "TIMESTAMP_LTZ", "TIMESTAMP_LTZ", "TEXT"]
_REPLICA = re.compile(r"^\s*CREATE\s+DATABASE\b.*\bAS\s+REPLICA\s+OF\b", re.IGNORECASE | re.DOTALL)
_SHOW = re.compile(r"^\s*SHOW\s+REPLICATION\s+DATABASES\b", re.IGNORECASE)


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if not isinstance(statement, exp.Command):
        return False
    text = _text(statement)
    return bool(_SHOW.match(text) or _REPLICA.match(text) or
                (re.match(r"^\s*ALTER\s+DATABASE\b", text, re.IGNORECASE) and
                 re.search(r"\b(REPLICATION|FAILOVER|REFRESH|PRIMARY|REPLICATION_SCHEDULE)\b", text, re.IGNORECASE)))


def _accounts(tokens: Tokens) -> list[str]:
    names = [tokens.name("an account (<organization>.<account>)")]
    while tokens.accept(","):
        names.append(tokens.name("an account (<organization>.<account>)"))
    return names


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    tokens = Tokens(_text(statement))
    if tokens.accept("SHOW", "REPLICATION", "DATABASES"):
        like = tokens.string() if tokens.accept("LIKE") else None
        tokens.end()
        rows = [r for r in databases.shown(session) if like is None or show.like_matches(like, str(r["name"]))]
        return Result(SHOW_COLUMNS, [tuple(r[c] for c in SHOW_COLUMNS) for r in rows], SHOW_TYPES)
    if tokens.accept("CREATE"):
        tokens.expect("DATABASE")
        if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
        name = tokens.name("a database name")
        tokens.expect("AS", "REPLICA", "OF")
        primary = tokens.name("the primary database (<organization>.<account>.<database>)")
        tokens.end()
        return status(databases.create_replica(session, name, primary, if_not_exists=if_not_exists))
    tokens.expect("ALTER", "DATABASE")
    tokens.accept("IF", "EXISTS")
    name = tokens.name("a database name")
    for kind in ("REPLICATION", "FAILOVER"):
        if tokens.accept("ENABLE", kind, "TO", "ACCOUNTS"):
            names = _accounts(tokens)
            tokens.accept("IGNORE", "EDITION", "CHECK")  # Snowflake's edition check: every deployment here is one
            tokens.end()
            return status(databases.enable(session, name, names, failover=kind == "FAILOVER"))
        if tokens.accept("DISABLE", kind):
            names = _accounts(tokens) if tokens.accept("TO", "ACCOUNTS") else None
            tokens.end()
            return status(databases.disable(session, name, names, failover=kind == "FAILOVER"))
    if tokens.accept("REFRESH"):
        tokens.end()
        return status(databases.refresh(session, name))
    if tokens.accept("PRIMARY"):
        tokens.end()
        return status(promotion.promote(session, name))
    if tokens.accept("SET", "REPLICATION_SCHEDULE"):
        tokens.expect("=")
        schedule = tokens.string()
        tokens.end()
        return status(databases.set_schedule(session, name, schedule))
    if tokens.accept("UNSET", "REPLICATION_SCHEDULE"):
        tokens.end()
        return status(databases.set_schedule(session, name, None))
    raise tokens.error("ENABLE REPLICATION | FAILOVER TO ACCOUNTS, DISABLE REPLICATION | FAILOVER, REFRESH, PRIMARY, "
                       "SET REPLICATION_SCHEDULE or UNSET REPLICATION_SCHEDULE")
