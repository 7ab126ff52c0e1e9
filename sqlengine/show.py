"""SHOW DATABASES / SCHEMAS / TABLES / VIEWS / OBJECTS / MODELS / WAREHOUSES / USER FUNCTIONS, with
Snowflake's columns, of what the role may see (catalog/listing.py).

sqlglot parses most SHOW statements; SHOW MODELS and SHOW USER FUNCTIONS fall back to a generic Command,
read here with a small regular expression. Both become a ShowSpec.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from catalog import listing
from catalog.identifiers import split_parts
from errors import UserError, compilation_error
from sandbox import names
from sandbox.expressions import constant, name_parts
from sandbox.resolver import Resolver
from sqlengine.results import Result

KINDS = ("DATABASES", "SCHEMAS", "TABLES", "VIEWS", "OBJECTS", "MODELS", "WAREHOUSES", r"USER\s+FUNCTIONS")

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_STRING = r"'(?:[^'\\]|''|\\.)*'"
_COMMAND = re.compile(
    rf"""SHOW\s+(?P<terse>TERSE\s+)?(?P<kind>{'|'.join(KINDS)})
    (?:\s+LIKE\s+(?P<like>{_STRING}))?
    (?:\s+IN\s+(?:(?P<account>ACCOUNT)|(?:(?P<scope_kind>DATABASE|SCHEMA)\s+)?(?P<scope>{_NAME}(?:\.{_NAME})*)))?
    (?:\s+STARTS\s+WITH\s+(?P<starts>{_STRING}))?
    (?:\s+LIMIT\s+(?P<limit>\d+))?
    \s*;?\s*\Z""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


@dataclass
class ShowSpec:
    kind: str
    terse: bool = False
    like: str | None = None
    starts_with: str | None = None
    scope_kind: str | None = None  # ACCOUNT, DATABASE, SCHEMA, or None when only a name (or nothing) was given
    scope: list[str] = field(default_factory=list)
    limit: int | None = None


def handles(statement: exp.Show) -> bool:
    return str(statement.this).upper() in KINDS


def handles_command(text: str) -> bool:
    return bool(re.match(rf"SHOW\s+(TERSE\s+)?({'|'.join(KINDS)})\b", text, re.IGNORECASE))


def from_expression(statement: exp.Show) -> ShowSpec:
    args = statement.args
    limit = args.get("limit")
    scope = args.get("scope")
    return ShowSpec(
        kind=str(statement.this).upper(),
        terse=bool(args.get("terse")),
        like=constant(args["like"]) if args.get("like") else None,
        starts_with=constant(args["starts_with"]) if isinstance(args.get("starts_with"), exp.Expression) else None,
        scope_kind=str(args["scope_kind"]).upper() if args.get("scope_kind") else None,
        scope=name_parts(scope) if scope is not None else [],
        limit=int(constant(limit.expression)) if limit is not None else None,
    )


def _string(literal: str | None) -> str | None:
    if literal is None:
        return None
    return re.sub(r"''|\\(.)", lambda m: m.group(1) or "'", literal[1:-1])


def from_command(text: str) -> ShowSpec:
    match = _COMMAND.match(text.strip())
    if not match:
        raise UserError(f"SQL compilation error: syntax error in '{text[:120]}': expected SHOW [TERSE] <objects> "
                          "[LIKE '<pattern>'] [IN ACCOUNT | DATABASE <db> | SCHEMA <db.schema>] "
                          "[STARTS WITH '<prefix>'] [LIMIT <n>].", code=1003, sqlstate="42000")
    scope_kind = "ACCOUNT" if match["account"] else (match["scope_kind"] or "").upper() or None
    return ShowSpec(
        kind=" ".join(match["kind"].upper().split()),
        terse=bool(match["terse"]),
        like=_string(match["like"]),
        starts_with=_string(match["starts"]),
        scope_kind=scope_kind,
        scope=split_parts(match["scope"]) if match["scope"] else [],
        limit=int(match["limit"]) if match["limit"] else None,
    )


def like_matches(pattern: str, value: str) -> bool:
    """Snowflake's LIKE for SHOW: case-insensitive, % any run, _ one character, backslash escapes."""
    regex = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(regex), value, re.IGNORECASE | re.DOTALL) is not None


# Scope ------------------------------------------------------------------------------------------------

def _scope(session, spec: ShowSpec) -> tuple[str | None, str | None]:
    """(database, schema) the listing is limited to; None for no limit. A database or schema the role
    holds nothing on is reported like a missing one (sandbox/resolver.py)."""
    action = f"SHOW {spec.kind}"
    if spec.scope_kind == "ACCOUNT":
        return None, None
    if not spec.scope and spec.scope_kind is None:
        # Without IN, Snowflake lists the current database, or the whole account when there is none.
        return session.database, None
    resolver = Resolver(session)
    if spec.scope_kind == "DATABASE":
        if len(spec.scope) != 1:
            raise compilation_error(f"invalid database name '{'.'.join(spec.scope)}'.")
        return resolver.database(spec.scope[0], usage=False).name, None
    if len(spec.scope) == 2:
        resolver.schema(*spec.scope, usage=False)
        return spec.scope[0], spec.scope[1]
    if len(spec.scope) != 1:
        raise compilation_error(f"invalid schema name '{'.'.join(spec.scope)}'.")
    (name,) = spec.scope
    # sqlglot reads a bare `IN name` as a schema; Snowflake takes the name of a database there too.
    if session.database and _findable(resolver.schema, session.database, name):
        return session.database, name
    if _findable(resolver.database, name):
        return name, None
    if not session.database:
        raise names.no_current(action, "database")
    resolver.schema(session.database, name, usage=False)
    return session.database, None


def _findable(lookup, *name: str) -> bool:
    try:
        lookup(*name, usage=False)
    except UserError:
        return False
    return True


# Listings: what the role may see (catalog/listing.py), in SHOW's columns ----------------------------

def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _databases(session, spec) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    columns = ["created_on", "name", "is_default", "is_current", "origin", "owner", "comment", "options",
               "retention_time", "kind"]
    types = ["TIMESTAMP_LTZ"] + ["TEXT"] * 9
    rows = [(d.created_on, d.name, "N", _yn(d.name == session.database), "", d.owner, d.comment, "", "1",
             "STANDARD") for d in listing.databases(session)]
    return columns, types, rows


def _schemas(session, spec):
    database, _schema = _scope(session, spec)
    columns = ["created_on", "name", "is_default", "is_current", "database_name", "owner", "comment", "options",
               "retention_time"]
    types = ["TIMESTAMP_LTZ"] + ["TEXT"] * 8
    rows = [(s.created_on, s.name, "N", _yn((s.database, s.name) == (session.database, session.schema)),
             s.database, s.owner, "", "", "1") for s in listing.schemas(session, database)]
    return columns, types, rows


def _tables(session, spec):
    columns = ["created_on", "name", "database_name", "schema_name", "kind", "comment", "cluster_by", "rows",
               "bytes", "owner", "retention_time", "automatic_clustering", "change_tracking", "is_external"]
    types = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "NUMBER", "NUMBER", "TEXT", "TEXT",
             "TEXT", "TEXT", "TEXT"]
    # DuckDB does not report a table's size on disk; bytes stays NULL rather than a guess.
    rows = [(t.created_on, t.name, t.database, t.schema, "TABLE", t.comment, "", t.rows, None, t.owner, "1", "OFF",
             "OFF", "N") for t in listing.relations(session, (listing.TABLE,), *_scope(session, spec))]
    return columns, types, rows


def _objects(session, spec):
    """Tables and views together; dbt lists a schema's relations with SHOW OBJECTS and reads kind,
    is_dynamic and is_iceberg, which are always 'N' here (the studio has neither kind of table)."""
    columns = ["created_on", "name", "database_name", "schema_name", "kind", "comment", "cluster_by", "rows", "bytes",
               "owner", "retention_time", "owner_role_type", "is_hybrid", "is_dynamic", "is_iceberg"]
    types = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "NUMBER", "NUMBER"] + ["TEXT"] * 6
    rows = [(r.created_on, r.name, r.database, r.schema, r.kind, r.comment, "", r.rows, None, r.owner, "1", "ROLE",
             "N", "N", "N") for r in listing.relations(session, (listing.TABLE, listing.VIEW), *_scope(session, spec))]
    return columns, types, rows


def _user_functions(session, spec):
    """Always empty: the studio has no CREATE FUNCTION, so no schema holds a user-defined function. dbt
    lists them beside the relations (SHOW USER FUNCTIONS IN <schema>) and needs the columns."""
    _scope(session, spec)  # a missing schema is still an error
    columns = ["created_on", "name", "schema_name", "is_builtin", "is_aggregate", "is_ansi", "min_num_arguments",
               "max_num_arguments", "arguments", "description", "catalog_name", "is_table_function",
               "valid_for_clustering", "is_secure", "language"]
    types = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "NUMBER", "NUMBER"] + ["TEXT"] * 7
    return columns, types, []


def _views(session, spec):
    columns = ["created_on", "name", "reserved", "database_name", "schema_name", "owner", "comment", "text",
               "is_secure", "is_materialized", "change_tracking"]
    types = ["TIMESTAMP_LTZ"] + ["TEXT"] * 7 + ["BOOLEAN", "BOOLEAN", "TEXT"]
    rows = [(v.created_on, v.name, "", v.database, v.schema, v.owner, v.comment, v.text, v.secure, False, "OFF")
            for v in listing.relations(session, (listing.VIEW,), *_scope(session, spec))]
    return columns, types, rows


def _models(session, spec):
    # deployment (a studio column): the model's state on each inference server, "server: state, …".
    columns = ["created_on", "name", "database_name", "schema_name", "owner", "base_model", "comment", "deployment"]
    types = ["TIMESTAMP_LTZ"] + ["TEXT"] * 7
    rows = [(m.created_on, m.name, m.database, m.schema, m.owner, m.base_model, "",
             ", ".join(f"{server}: {state}" for server, state in m.deployments) or "not deployed")
            for m in listing.models(session, *_scope(session, spec))]
    return columns, types, rows


def _warehouses(session, spec):
    columns = ["name", "state", "type", "size", "running", "queued", "is_default", "is_current", "auto_suspend",
               "auto_resume", "created_on", "owner", "comment", "devices", "concurrency"]
    types = ["TEXT", "TEXT", "TEXT", "TEXT", "NUMBER", "NUMBER", "TEXT", "TEXT", "NUMBER", "TEXT",
             "TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "NUMBER"]
    rows = [(w.name, "STARTED", "STANDARD", w.size, w.running, w.queued, "N", _yn(w.name == session.warehouse), None,
             "true", w.created_on, w.owner, w.comment, w.devices, w.concurrency) for w in listing.warehouses(session)]
    return columns, types, rows


LISTINGS = {"DATABASES": _databases, "SCHEMAS": _schemas, "TABLES": _tables, "VIEWS": _views, "OBJECTS": _objects,
            "MODELS": _models, "WAREHOUSES": _warehouses, "USER FUNCTIONS": _user_functions}
# SHOW TERSE keeps these columns; the kind column names the object type.
TERSE = ["created_on", "name", "kind", "database_name", "schema_name"]
TERSE_KIND = {"DATABASES": "STANDARD", "SCHEMAS": "SCHEMA", "TABLES": "TABLE", "VIEWS": "VIEW",
              "MODELS": "MODEL", "WAREHOUSES": "WAREHOUSE", "USER FUNCTIONS": "FUNCTION"}


def run(session, spec: ShowSpec) -> Result:
    columns, types, rows = LISTINGS[spec.kind](session, spec)
    name_at = columns.index("name")
    if spec.like is not None:
        rows = [r for r in rows if like_matches(spec.like, r[name_at])]
    if spec.starts_with is not None:
        rows = [r for r in rows if r[name_at].startswith(spec.starts_with)]
    if spec.limit is not None:
        rows = rows[: spec.limit]
    if spec.terse:
        def pick(row, column):
            return row[columns.index(column)] if column in columns else None

        def kind(row):  # SHOW OBJECTS lists several kinds; each row says its own
            return pick(row, "kind") if spec.kind == "OBJECTS" else TERSE_KIND[spec.kind]

        rows = [(pick(r, "created_on"), r[name_at], kind(r),
                 r[name_at] if spec.kind == "DATABASES" else pick(r, "database_name"), pick(r, "schema_name"))
                for r in rows]
        return Result(TERSE, rows, ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT"])
    return Result(columns, rows, types)
