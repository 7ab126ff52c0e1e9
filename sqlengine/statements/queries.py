"""SELECT: Cortex calls on constants are answered here; everything else runs in DuckDB, in a sandbox.

The sandbox (sandbox/box.py) checks the query against the allowlist, resolves and checks every name,
answers the session functions (CURRENT_ROLE() …) and attaches only what the query may read. Then
Cortex calls become Python UDFs (sqlengine/udfs.py) before DuckDB runs it.

Either way a column that is a Cortex call gets the type Snowflake gives it (sqlengine/cortex.py's
result_type), since Snowflake's clients decode a cell by its column's type.
"""
from __future__ import annotations

from typing import Any

import duckdb
from sqlglot import exp

from catalog.accountdata import duckdb_message
from errors import compilation_error
from inference import complete as complete_service
from sandbox import allowlist
from sandbox.box import Sandbox
from sandbox.expressions import constant, cortex_call, is_constant
from sqlengine import cortex
from sqlengine.results import Result
from sqlengine.udfs import CortexCalls


def handles(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Query)


def run(executor, statement: exp.Query) -> Result:
    session = executor.session
    if is_constant_cortex_select(statement):
        allowlist.check(statement)
        return select_constants(executor, statement)
    with Sandbox(session) as box:
        tree = box.prepare(statement)
        # COMPLETE with a constant model name is authorized (and recorded) once here, on the statement's
        # thread, rather than once per row on the threads that answer the rows.
        models = [constant(args[0]) for node in statement.walk() if (call := cortex_call(node))
                  for name, args in [call] if name in ("COMPLETE", "AI_COMPLETE") and args and is_constant(args[0])]
        authorized = complete_service.authorize_statement(session, [m for m in models if isinstance(m, str)])
        setattr(session, complete_service.AUTHORIZED_ATTRIBUTE, authorized)
        try:
            calls = CortexCalls(session)
            calls.rewrite(tree)
            result = run_prepared(box, tree, calls)
            result.columns = snowflake_column_names(statement, tree, result.columns)
            result.types = cortex_column_types(statement, result.types)
            return result
        finally:
            setattr(session, complete_service.AUTHORIZED_ATTRIBUTE, None)
            complete_service.record_checked(session)


def snowflake_column_names(statement: exp.Query, prepared: exp.Query, columns: list[str]) -> list[str]:
    """Result column names as Snowflake gives them: unquoted aliases and names upper-cased, and an
    unaliased expression by its upper-cased text as written (a session function or Cortex call by its
    text as written, see sandbox/session_functions.py). DuckDB keeps them as written. Columns that
    come from `*` keep the table's own names."""
    select = statement if isinstance(statement, exp.Select) else statement.find(exp.Select)
    named = prepared if isinstance(prepared, exp.Select) else prepared.find(exp.Select)
    if select is None or named is None:
        return columns
    projections = select.expressions
    if len(projections) != len(columns) or any(p.is_star for p in projections):
        return columns
    names = []
    for projection, as_prepared, column in zip(projections, named.expressions, columns):
        if isinstance(projection, exp.Alias):
            names.append(column if projection.args["alias"].quoted else column.upper())
        elif isinstance(projection, exp.Column):
            names.append(column if projection.this.quoted else column.upper())
        elif isinstance(as_prepared, exp.Alias):
            names.append(column)
        else:  # DuckDB names it by its own transpiled text; Snowflake by the text as written
            names.append(projection.sql(dialect="snowflake").upper())
    return names


def cortex_column_types(statement: exp.Query, types: list[str] | None) -> list[str] | None:
    """DuckDB's types, but for each column that is a Cortex call: the type that call returns (DuckDB
    knows only JSON, which would make every OBJECT a VARIANT)."""
    if not isinstance(statement, exp.Select) or types is None or len(statement.expressions) != len(types):
        return types
    calls = [cortex_call(p.unalias()) for p in statement.expressions]
    return [cortex.result_type(*call) if call else t for call, t in zip(calls, types)]


def is_constant_cortex_select(statement: exp.Query) -> bool:
    """SELECT <Cortex calls and constants> with no FROM and every Cortex argument a constant."""
    if not isinstance(statement, exp.Select) or statement.args.get("from_"):
        return False
    projections = [p.unalias() for p in statement.expressions]
    calls = [cortex_call(p) for p in projections]
    if not any(calls):
        return False
    return all(all(is_constant(a) for a in call[1]) if call else is_constant(p)
               for p, call in zip(projections, calls))


def select_constants(executor, statement: exp.Select) -> Result:
    columns, values, types = [], [], []
    for projection in statement.expressions:
        columns.append(projection.alias.upper() if projection.alias else projection.unalias().sql(dialect="snowflake"))
        value = evaluate(executor, projection.unalias())
        call = cortex_call(projection.unalias())
        values.append(value)
        types.append(cortex.result_type(*call) if call else constant_type(value))
    return Result(columns, [tuple(values)], types)


def constant_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "NUMBER"
    if isinstance(value, float):
        return "FLOAT"
    if isinstance(value, dict):
        return "OBJECT"
    if isinstance(value, list):
        return "ARRAY"
    return "TEXT"


def evaluate(executor, node: exp.Expression):
    call = cortex_call(node)
    if call is None:
        return constant(node)
    name, args = call
    return cortex.call(executor.session, name, [constant(a) for a in args])


def run_prepared(box: Sandbox, tree: exp.Expression, calls: CortexCalls) -> Result:
    sql = tree.sql(dialect="duckdb")
    box.seal()
    con = box.con
    if calls.found:
        calls.register(con)
        calls.collecting = True
        try:
            con.execute(sql).fetchall()
        except duckdb.Error:
            pass  # the real pass reports it; the collecting pass only decides what to ask ahead
        finally:
            calls.collecting = False
        calls.prefetch()
    try:
        if calls.finetune:
            columns, types, rows = calls.on_statement_thread(lambda: box.fetch(sql))
        else:
            columns, types, rows = box.fetch(sql)
    except duckdb.Error as exc:
        if calls.error is not None:  # the inference service's own message, code and sqlstate
            raise calls.error from None
        raise compilation_error(duckdb_message(exc)) from exc
    return Result(columns, rows, types)
