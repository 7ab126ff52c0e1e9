"""describeOnly: the columns and types a statement would return, without running it.

Snowpark asks this for every DataFrame's schema. A query runs as `SELECT * FROM (<query>) LIMIT 0` with
each Cortex call replaced by a NULL of the type it returns, so describing never starts a fine-tuning job
or a completion; any other statement is answered with the one `status` column it would return."""
from __future__ import annotations

from sqlglot import exp

from sandbox.expressions import cortex_call

# What each Cortex call returns (sqlengine/cortex.py): a string, but for the shapes that are JSON objects.
_OBJECT_RESULTS = {("FINETUNE", "DESCRIBE"): "OBJECT", ("FINETUNE", "SHOW"): "ARRAY"}


def _returned_type(name: str, args: list[exp.Expression]) -> str:
    if name == "FINETUNE" and args and isinstance(args[0], exp.Literal):
        return _OBJECT_RESULTS.get((name, args[0].this.upper()), "VARCHAR")
    if name == "COMPLETE" and len(args) == 3:
        return "OBJECT"
    return "VARCHAR"


def without_side_effects(query: exp.Query) -> exp.Query:
    def replace(node: exp.Expression) -> exp.Expression:
        call = cortex_call(node)
        if call is None:
            return node
        return exp.Cast(this=exp.Null(), to=exp.DataType.build(_returned_type(*call), dialect="snowflake"))

    inner = query.copy().transform(replace)
    return exp.select("*").from_(inner.subquery("describe_only")).limit(0)


def describable(statements: list[exp.Expression]) -> list[exp.Expression] | None:
    """The statements to run instead when describing, or None when the statement is not a query."""
    if len(statements) == 1 and isinstance(statements[0], exp.Query):
        return [without_side_effects(statements[0])]
    return None
