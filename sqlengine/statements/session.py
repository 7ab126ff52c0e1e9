"""USE ROLE / WAREHOUSE / DATABASE / SCHEMA: they change the session the next statements run in,
through access/roles.use, which every other way of opening a session calls too.

BEGIN / COMMIT / ROLLBACK: every statement here commits as it runs (Snowflake's AUTOCOMMIT), and there
are no multi-statement transactions. BEGIN and COMMIT are accepted because tools wrap their writes in
them (dbt's seeds do); ROLLBACK is refused, since what ran after BEGIN is already committed and a
silent success would claim it was undone.
"""
from __future__ import annotations

from sqlglot import exp

from access import roles
from errors import UserError, compilation_error
from sandbox.expressions import name_parts
from sqlengine.results import Result, status


def handles(statement: exp.Expression) -> bool:
    return isinstance(statement, (exp.Use, exp.Transaction, exp.Commit, exp.Rollback))


def run(executor, statement: exp.Expression) -> Result:
    if isinstance(statement, (exp.Transaction, exp.Commit)):
        return status("Statement executed successfully.")
    if isinstance(statement, exp.Rollback):
        raise UserError("ROLLBACK is not supported here: each statement is committed when it runs (BEGIN and "
                        "COMMIT are accepted and change nothing), so there is nothing left to undo.",
                        code=2003, sqlstate="0A000")
    return _use(executor, statement)


def _use(executor, statement: exp.Use) -> Result:
    session = executor.session
    kind = statement.args.get("kind")
    kind = (kind.name if isinstance(kind, exp.Expression) else str(kind or "DATABASE")).upper()
    parts = name_parts(statement.this)
    if not parts:
        raise compilation_error(f"USE {kind} needs a name.")
    if kind == "ROLE":
        roles.use(session, role=parts[-1])
    elif kind == "WAREHOUSE":
        roles.use(session, warehouse=parts[-1])
    elif kind == "DATABASE":
        roles.use(session, database=parts[-1])
    elif kind == "SCHEMA":
        roles.use(session, database=parts[0] if len(parts) == 2 else None, schema=parts[-1])
    else:
        raise compilation_error(f"USE {kind} is not supported.")
    return status("Statement executed successfully.")
