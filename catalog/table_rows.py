"""INSERT, UPDATE, DELETE and TRUNCATE of a table's rows, for a session's role.

The target table needs the statement's own privilege (its owner holds them all), once the role may use
its database and schema and holds some privilege on it: without those it does not exist for the role.
What else a statement reads, the sandbox checks as it prepares it. Each change runs in one DuckDB
transaction of the statement's sandbox (catalog/objects.py).
"""
from __future__ import annotations

from sqlglot import exp

from access import privileges
from access.session import Session
from catalog.identifiers import QualifiedName, quote_always
from catalog.objects import execute, write
from errors import UserError, compilation_error
from sandbox import names
from sandbox.box import Sandbox
from sandbox.expressions import name_parts


def _existing_table(box: Sandbox, target: QualifiedName) -> None:
    kind = box.kind_of(target)
    if kind is None:
        raise names.object_not_found(target)
    if kind != "TABLE":
        raise compilation_error(f"'{target}' is a view; only tables can be changed.")


def _require_change(box: Sandbox, privilege: str, target: QualifiedName) -> None:
    kind = box.visible_kind(target)
    if kind is None:
        raise names.object_not_found(target)
    if kind != "TABLE":
        raise compilation_error(f"'{target}' is a view; only tables can be changed.")
    privileges.require(box.session, privilege, "TABLE", str(target), roles=box.roles)


def insert(session: Session, target: QualifiedName, statement: exp.Insert) -> int:
    """INSERT [OVERWRITE] INTO `target` …; the number of rows inserted."""
    with Sandbox(session, write=target.database, action="INSERT") as box:
        _require_change(box, "INSERT", target)
        rewritten = box.prepare(statement)
        if isinstance(rewritten.this, exp.Schema):
            rewritten.this.set("expressions", [exp.to_identifier(name_parts(c)[0], quoted=True)
                                               for c in rewritten.this.expressions])
        overwrite = bool(rewritten.args.get("overwrite"))
        rewritten.set("overwrite", False)

        def steps(con):
            _existing_table(box, target)
            if overwrite:
                execute(con, f"DELETE FROM {quote_always(target.database, target.schema, target.name)}")
            return execute(con, rewritten.sql(dialect="duckdb")).fetchone()[0]

        return int(write(target, box, steps))


def update_or_delete(session: Session, target: QualifiedName, statement: exp.Update | exp.Delete) -> int:
    """UPDATE or DELETE on `target`; the number of rows changed."""
    action = "UPDATE" if isinstance(statement, exp.Update) else "DELETE"
    with Sandbox(session, write=target.database, action=action) as box:
        _require_change(box, action, target)
        rewritten = box.prepare(statement)

        def steps(con):
            _existing_table(box, target)
            return execute(con, rewritten.sql(dialect="duckdb")).fetchone()[0]

        return int(write(target, box, steps))


def truncate(session: Session, target: QualifiedName, *, if_exists: bool = False) -> None:
    """TRUNCATE TABLE [IF EXISTS]: a table missing, or as good as missing to the role, is skipped with
    IF EXISTS; one it may see but not truncate never is."""

    def steps(con):
        _existing_table(box, target)
        execute(con, f"DELETE FROM {quote_always(target.database, target.schema, target.name)}")

    with Sandbox(session, write=target.database, action="TRUNCATE TABLE") as box:
        try:
            _require_change(box, "TRUNCATE", target)
        except UserError as error:
            if if_exists and not error.code == privileges.INSUFFICIENT_PRIVILEGES:
                return
            raise
        write(target, box, steps)
