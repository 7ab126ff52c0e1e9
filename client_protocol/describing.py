"""describeOnly: the columns and types a statement would return, without running it.

Snowpark asks this for every DataFrame's schema. A query runs as `SELECT * FROM (<query>) LIMIT 0` with
each Cortex call replaced by a NULL, so describing never starts a fine-tuning job or a completion; a
column that is a Cortex call is then given the type the call returns, by the rule a query's own result
follows (sqlengine/statements/queries.py's cortex_column_types; DuckDB cannot cast a NULL to OBJECT).
Any other statement is answered with the one `status` column it would return, unrun (a query that
returns no rows stands in for it)."""
from __future__ import annotations

from sqlglot import exp, parse_one

from sandbox.expressions import cortex_call


def _without_cortex_calls(query: exp.Query) -> exp.Query:
    def replace_call(node: exp.Expression) -> exp.Expression:
        if cortex_call(node) is None:
            return node
        return exp.Cast(this=exp.Null(), to=exp.DataType.build("VARCHAR"))

    return query.copy().transform(replace_call)


# What any other statement would return: its one `status` column (sqlengine.results.status), no rows.
STATUS_ONLY = 'SELECT CAST(NULL AS VARCHAR) AS "status" LIMIT 0'


def describable(statements: list[exp.Expression]) -> exp.Query:
    """The query to run instead when describing: the statement's own, emptied, when it is a query, else
    one with the status column. Run and recorded like any statement, so a describe leaves no row behind
    unfinished and its queryId can be looked up."""
    if len(statements) == 1 and isinstance(statements[0], exp.Query):
        inner = _without_cortex_calls(statements[0])
        return exp.select("*").from_(inner.subquery("describe_only")).limit(0)
    return parse_one(STATUS_ONLY, read="snowflake")
