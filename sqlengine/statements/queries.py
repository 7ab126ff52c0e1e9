"""SELECT: Cortex calls on constants are answered here; everything else runs in DuckDB.

Before DuckDB sees a query, session functions (CURRENT_ROLE() …) become literals, Cortex calls become
Python UDFs (sqlengine/udfs.py), and SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FINE_TUNING_USAGE_HISTORY is
attached when the query names it (sqlengine/usage.py).
"""
from __future__ import annotations

import json
import re
from typing import Any

import duckdb
from sqlglot import exp

from access import privileges
from catalog import accountdata
from inference import complete as complete_service
from sqlengine import cortex, session_functions, usage
from sqlengine.parsing import constant, cortex_call, is_constant
from sqlengine.results import Result
from sqlengine.udfs import CortexCalls
from studio.errors import compilation_error


def handles(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Query)


def run(executor, statement: exp.Query) -> Result:
    session = executor.session
    if is_constant_cortex_select(statement):
        return select_constants(executor, statement)
    privileges.require_read(session, statement, session.database, session.schema)
    # COMPLETE with a constant model name is authorized (and recorded) once here, on the statement's
    # thread, rather than once per row on the threads that answer the rows.
    models = [constant(args[0]) for node in statement.walk() if (call := cortex_call(node))
              for name, args in [call] if name == "COMPLETE" and args and is_constant(args[0])]
    authorized = complete_service.authorize_statement(session, [m for m in models if isinstance(m, str)])
    setattr(session, complete_service.AUTHORIZED_ATTRIBUTE, authorized)
    try:
        tree = statement.copy()
        name_rewritten_projections(tree)
        calls = CortexCalls(session)
        rewritten = session_functions.substitute(tree, session)
        rewritten |= calls.rewrite(tree)
        with_usage = usage.references_view(tree, session)
        if not rewritten and not with_usage:
            columns, rows = accountdata.run_query(statement.sql(dialect="snowflake"), session.database, session.schema)
            return Result(snowflake_column_names(statement, columns), rows)
        result = run_rewritten(session, tree, calls, with_usage=with_usage)
        result.columns = snowflake_column_names(tree, result.columns)
        return result
    finally:
        setattr(session, complete_service.AUTHORIZED_ATTRIBUTE, None)
        complete_service.record_checked(session)


def snowflake_column_names(statement: exp.Query, columns: list[str]) -> list[str]:
    """Result column names as Snowflake gives them: unquoted aliases and names upper-cased, and an
    unaliased expression by its upper-cased text. DuckDB keeps them as written. Columns that come
    from `*` keep the table's own names."""
    select = statement if isinstance(statement, exp.Select) else statement.find(exp.Select)
    if select is None:
        return columns
    projections = select.expressions
    if len(projections) != len(columns) or any(p.is_star for p in projections):
        return columns
    names = []
    for projection, column in zip(projections, columns):
        if isinstance(projection, exp.Alias):
            names.append(column if projection.args["alias"].quoted else column.upper())
        elif isinstance(projection, exp.Column):
            names.append(column if projection.this.quoted else column.upper())
        else:  # DuckDB names it by its own transpiled text; Snowflake by the text as written
            names.append(projection.sql(dialect="snowflake").upper())
    return names


def is_constant_cortex_select(statement: exp.Query) -> bool:
    """SELECT <Cortex calls and constants> with no FROM and every Cortex argument a constant."""
    if not isinstance(statement, exp.Select) or statement.args.get("from"):
        return False
    projections = [p.unalias() for p in statement.expressions]
    calls = [cortex_call(p) for p in projections]
    if not any(calls):
        return False
    return all(all(is_constant(a) for a in call[1]) if call else is_constant(p)
               for p, call in zip(projections, calls))


def select_constants(executor, statement: exp.Select) -> Result:
    columns, values = [], []
    for projection in statement.expressions:
        columns.append(projection.alias.upper() if projection.alias else projection.unalias().sql(dialect="snowflake"))
        values.append(evaluate(executor, projection.unalias()))
    return Result(columns, [tuple(values)])


def evaluate(executor, node: exp.Expression):
    call = cortex_call(node)
    if call is None:
        return constant(node)
    name, args = call
    return cortex.call(executor.session, name, [constant(a) for a in args])


def name_rewritten_projections(tree: exp.Expression) -> None:
    """Give `CURRENT_ROLE()` or `SNOWFLAKE.CORTEX.COMPLETE(…)` columns the name Snowflake shows (the
    expression's text), not the name of what they are rewritten to."""
    for select in list(tree.find_all(exp.Select)):
        for projection in select.expressions:
            if isinstance(projection, (exp.Alias, exp.Star)) or isinstance(projection, exp.Column):
                continue
            if any(session_functions.function_name(n) or cortex_call(n) for n in projection.walk()):
                projection.replace(exp.alias_(projection.copy(), projection.sql(dialect="snowflake"), quoted=True))


def run_rewritten(session, tree: exp.Expression, calls: CortexCalls, *, with_usage: list[str]) -> Result:
    sql = tree.sql(dialect="duckdb")
    with accountdata.connect(session.database, session.schema) as con:
        if with_usage:
            usage.attach(con, with_usage)
        if calls.found:
            calls.register(con)
        if calls.found:
            calls.collecting = True
            try:
                con.execute(sql).fetchall()
            except duckdb.Error:
                pass  # the real pass reports it; the collecting pass only decides what to ask ahead
            finally:
                calls.collecting = False
            calls.prefetch()
        try:
            cursor = con.execute(sql)
            description = cursor.description
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            if calls.error is not None:  # the inference service's own message, code and sqlstate
                raise calls.error from None
            raise compilation_error(duckdb_message(exc)) from exc
    columns = [d[0] for d in description]
    types = [snowflake_type(str(d[1])) for d in description]
    json_columns = [i for i, d in enumerate(description) if str(d[1]) == "JSON"]
    if json_columns:
        rows = [_parse_json(row, json_columns) for row in rows]
    return Result(columns, rows, types)


def _parse_json(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    return tuple(values)


def snowflake_type(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t == "JSON":
        return "VARIANT"
    if t.endswith("[]") or t.startswith("LIST"):
        return "ARRAY"
    if t.startswith(("STRUCT", "MAP")):
        return "OBJECT"
    if t in ("VARCHAR", "TEXT", "STRING", "UUID"):
        return "TEXT"
    if t in ("BOOLEAN", "DATE", "TIME"):
        return t
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return "TIMESTAMP_LTZ"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP_NTZ"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "FLOAT"
    if t.startswith("DECIMAL") or t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                                         "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "NUMBER"
    if t == "BLOB":
        return "BINARY"
    return "VARIANT"


def duckdb_message(exc: duckdb.Error) -> str:
    text = str(exc).split("\n")[0]
    return re.sub(r"^[A-Za-z ]+Error: ", "", text)
