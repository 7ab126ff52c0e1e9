"""SELECT: Cortex function calls on constants are answered here; everything else runs in DuckDB."""
from __future__ import annotations

from sqlglot import exp

from catalog import accountdata
from sqlengine import cortex
from sqlengine.parsing import constant, cortex_call
from sqlengine.results import Result


def handles(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Query)


def run(executor, statement: exp.Query) -> Result:
    if isinstance(statement, exp.Select) and not statement.args.get("from") and any(
        cortex_call(p.unalias()) for p in statement.expressions
    ):
        return select_constants(executor, statement)
    columns, rows = accountdata.run_query(statement.sql(dialect="snowflake"), executor.session.database,
                                          executor.session.schema)
    return Result(columns, rows)


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
