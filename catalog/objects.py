"""CREATE and DROP of tables and views for a session's role (DROP MODEL is models_registry/registry.py's).

Tables and views live in DuckDB (one file per database, catalog/accountdata.py), their owners and
declared column types in the catalog's rows (SchemaObject). A change runs in the statement's sandbox
(sandbox/box.py), where only the target's database is writable, inside one DuckDB transaction nested
in a Django one, so a failure leaves neither half-done.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
from django.db import transaction
from sqlglot import exp

from access import privileges
from access.session import Session
from catalog import accountdata, datatypes, stages
from catalog.identifiers import QualifiedName, quote, quote_always
from catalog.models import SchemaObject
from errors import UserError, compilation_error
from sandbox.box import Sandbox
from sandbox.expressions import constant, name_parts
from sandbox.resolver import Resolver


def wrong_kind(found: str, wanted: str) -> UserError:
    return UserError(f"SQL compilation error: Object found is of type '{found}', not specified type '{wanted}'.",
                     code=2002, sqlstate="42710")


def _already_exists(name: str) -> UserError:
    return UserError(f"SQL compilation error: Object '{name}' already exists.", code=2002, sqlstate="42710")


def execute(con: duckdb.DuckDBPyConnection, sql: str):
    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        raise compilation_error(accountdata.duckdb_message(exc)) from exc


@transaction.atomic
def write(target: QualifiedName, box: Sandbox, steps: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
    """Run `steps(con)` in one DuckDB transaction of the statement's sandbox, where only
    `target.database` is writable; Django changes made by `steps` roll back with it."""
    box.attach(target.database)
    box.seal()
    con = box.con
    con.execute("BEGIN")
    try:
        outcome = steps(con)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return outcome


def _parts(target: QualifiedName) -> tuple[str, str, str]:
    return target.database, target.schema, target.name


# CREATE TABLE / VIEW ----------------------------------------------------------------------------

@dataclass
class Creation:
    """CREATE [OR REPLACE] TABLE / VIEW [IF NOT EXISTS] as written: `definitions` are a table's column
    definitions (exp.ColumnDef) or a view's column names, `query` its AS SELECT …, `text` the statement
    itself, which a view keeps as its definition."""

    kind: str  # TABLE or VIEW
    target: QualifiedName
    definitions: list[exp.Expression] = field(default_factory=list)
    query: exp.Expression | None = None
    replace: bool = False
    if_not_exists: bool = False
    comment: str = ""
    text: str = ""


@dataclass
class _Column:
    name: str
    duckdb_sql: str
    declared: str
    comment: str | None


def _columns(definitions: list[exp.Expression]) -> list[_Column]:
    columns = []
    for definition in definitions:
        if not isinstance(definition, exp.ColumnDef):
            raise compilation_error(f"unsupported table element {definition.sql(dialect='snowflake')}.")
        (name,) = name_parts(definition.this)
        datatype = definition.args.get("kind")
        if datatype is None:
            raise compilation_error(f"column {quote(name)} needs a type.")
        comment, constraints = None, []
        for constraint in definition.args.get("constraints") or []:
            if isinstance(constraint.args.get("kind"), exp.CommentColumnConstraint):
                comment = str(constant(constraint.args["kind"].this))
            else:
                constraints.append(constraint.sql(dialect="duckdb"))
        sql = " ".join([quote_always(name), datatypes.to_duckdb(datatype), *constraints])
        columns.append(_Column(name, sql, datatypes.declared(datatype), comment))
    return columns


def create(session: Session, creation: Creation) -> bool:
    """CREATE TABLE / VIEW on the schema is needed, OR REPLACE needs the old object's ownership too, and
    whatever AS SELECT reads is checked as the session's query. False when IF NOT EXISTS found one."""
    kind, target, query = creation.kind, creation.target, creation.query
    schema = Resolver(session).schema(target.database, target.schema, usage=False)
    if kind == "VIEW" and query is None:
        raise compilation_error("CREATE VIEW needs AS SELECT ….")
    if kind == "TABLE" and query is None and not creation.definitions:
        raise compilation_error("CREATE TABLE needs a column list or AS SELECT ….")
    view_columns = [name_parts(d)[0] for d in creation.definitions] if kind == "VIEW" else []
    columns = _columns(creation.definitions) if kind != "VIEW" else []
    privileges.require_create_in_schema(session, kind, target.database, target.schema)
    with Sandbox(session, write=target.database, action=f"CREATE {kind}") as box:
        steps, replaced = _creation_steps(session, box, creation, schema, columns, view_columns)
        created = write(target, box, steps)
    if replaced == ["TABLE"]:  # a replaced table's stage goes with it, as in Snowflake
        stages.drop_table_stages(*_parts(target))
    return created


def _creation_steps(session: Session, box: Sandbox, creation: Creation, schema, columns: list[_Column],
                    view_columns: list[str]):
    """What CREATE TABLE / VIEW does inside its DuckDB transaction, once its query is prepared, and the
    kind of what OR REPLACE dropped (filled in as it runs)."""
    kind, target, query = creation.kind, creation.target, creation.query
    prepared = None
    replaced: list[str] = []
    if query is not None:
        # A view's unqualified names mean what they mean in the view's own schema, whoever reads it.
        context = (target.database, target.schema) if kind == "VIEW" else (session.database, session.schema)
        prepared = box.prepare(query, database=context[0], schema=context[1])
        if kind == "VIEW" and any(read.kind == "VIRTUAL" for read in box.reads):
            raise UserError("SQL compilation error: a view cannot read INFORMATION_SCHEMA or "
                            "SNOWFLAKE.ACCOUNT_USAGE here: they are answered per query, not stored.",
                            code=2003, sqlstate="0A000")
    relation = quote_always(*_parts(target))

    def steps(con):
        existing = box.kind_of(target)
        if existing and creation.if_not_exists:
            return False
        if existing and existing != kind:
            raise wrong_kind(existing, kind)
        if existing and not creation.replace:
            raise _already_exists(quote(target.name))
        if existing:
            privileges.require_ownership(session, kind, str(target))
            execute(con, f"DROP {kind} {relation}")
            replaced.append(existing)
        if kind == "VIEW":
            names = f" ({', '.join(quote_always(c) for c in view_columns)})" if view_columns else ""
            execute(con, f"CREATE VIEW {relation}{names} AS {prepared.sql(dialect='duckdb')}")
        elif columns:
            execute(con, f"CREATE TABLE {relation} ({', '.join(c.duckdb_sql for c in columns)})")
            for column in columns:
                if column.comment is not None:
                    # COMMENT ON takes no parameters in DuckDB.
                    text = "'" + column.comment.replace("'", "''") + "'"
                    execute(con, f"COMMENT ON COLUMN {relation}.{quote_always(column.name)} IS {text}")
            if prepared is not None:
                execute(con, f"INSERT INTO {relation} {prepared.sql(dialect='duckdb')}")
        else:
            execute(con, f"CREATE TABLE {relation} AS {prepared.sql(dialect='duckdb')}")
        SchemaObject.objects.filter(schema=schema, name=target.name).delete()
        SchemaObject.objects.create(
            schema=schema, name=target.name, kind=kind, owner_role=session.role, comment=creation.comment,
            text=creation.text if kind == "VIEW" else "", column_types={c.name: c.declared for c in columns},
        )
        return True

    return steps, replaced


# DROP -----------------------------------------------------------------------------------------------

def drop(session: Session, kind: str, target: QualifiedName, *, if_exists: bool = False) -> bool:
    """DROP TABLE / VIEW: its owner only; a table's stage goes with it. False when IF EXISTS and the role
    sees no such object: one it may not see does not exist for it."""

    def steps(con):
        if existing != kind:
            raise wrong_kind(existing, kind)
        privileges.require_ownership(session, kind, str(target))
        execute(con, f"DROP {kind} {quote_always(*_parts(target))}")
        SchemaObject.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                    name=target.name).delete()
        return True

    with Sandbox(session, write=target.database, action=f"DROP {kind}") as box:
        try:
            existing = box.visible_kind(target)
        except UserError:
            existing = None
            if not if_exists:
                raise
        if existing is None:
            if if_exists:
                return False
            raise UserError(f"SQL compilation error: {kind.title()} '{target}' does not exist or not authorized.",
                            code=2003, sqlstate="02000")
        write(target, box, steps)
    if kind == "TABLE":  # once the drop has committed: its stage goes with it, as in Snowflake
        stages.drop_table_stages(*_parts(target))
    return True
