"""Reading constant values and names out of parsed Snowflake SQL (sqlglot trees), with Snowflake's
identifier rules. The sandbox resolves names with these, and the statements read their arguments with them."""
from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from errors import UserError, compilation_error
from sandbox.functions import CORTEX

# A cast that keeps a constant what it was: Snowpark writes a dict literal as PARSE_JSON('…')::OBJECT.
_SEMI_STRUCTURED = {exp.DataType.Type.OBJECT: dict, exp.DataType.Type.ARRAY: list, exp.DataType.Type.VARIANT: object}


def constant(node: exp.Expression) -> Any:
    """The Python value of a constant argument: strings, numbers, NULL, [arrays], {objects}, PARSE_JSON."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(node, exp.Neg):
        return -constant(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Array):
        return [constant(e) for e in node.expressions]
    if isinstance(node, exp.Struct):
        out = {}
        for item in node.expressions:
            if isinstance(item, (exp.PropertyEQ, exp.EQ)):
                key = item.this.name if isinstance(item.this, (exp.Identifier, exp.Column)) else constant(item.this)
                out[str(key)] = constant(item.expression)
            else:
                raise compilation_error(f"unsupported object entry {item.sql(dialect='snowflake')}")
        return out
    if isinstance(node, exp.ParseJSON):
        return json.loads(constant(node.this))
    if isinstance(node, exp.Paren):
        return constant(node.this)
    if isinstance(node, exp.Cast) and node.to.this in _SEMI_STRUCTURED:
        value = constant(node.this)
        if isinstance(value, _SEMI_STRUCTURED[node.to.this]):
            return value
    raise compilation_error(f"argument {node.sql(dialect='snowflake')} must be a constant here.")


def is_constant(node: exp.Expression) -> bool:
    try:
        constant(node)
    except UserError:
        return False
    return True


def cortex_call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """('FINETUNE', args) for SNOWFLAKE.CORTEX.FINETUNE(...) (or CORTEX.X / bare X), else None; X is one of
    sandbox/functions.py's CORTEX (COMPLETE, FINETUNE, AI_COMPLETE)."""
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Anonymous):
        prefix = [p.upper() for p in dotted(node.this)]
        func = node.expression
        if prefix in (["SNOWFLAKE", "CORTEX"], ["CORTEX"]):
            return func.name.upper(), list(func.expressions)
    if isinstance(node, exp.Anonymous) and node.name.upper() in CORTEX:
        return node.name.upper(), list(node.expressions)
    return None


def dotted(node: exp.Expression) -> list[str]:
    if isinstance(node, exp.Dot):
        return dotted(node.this) + dotted(node.expression)
    if isinstance(node, (exp.Identifier, exp.Column, exp.Var)):
        return [node.name]
    return [node.sql()]


def name_parts(node: exp.Expression | None) -> list[str]:
    """Identifier rules on a parsed name (Table, Column, Identifier or Dot): unquoted parts upper-cased,
    quoted parts kept as written."""
    if node is None:
        return []
    if isinstance(node, exp.Identifier):
        return [node.name if node.quoted else node.name.upper()]
    if isinstance(node, exp.Table):
        return [p for part in node.parts for p in name_parts(part)]
    if isinstance(node, exp.Column):
        return [p for part in node.parts for p in name_parts(part)]
    if isinstance(node, exp.Dot):
        return name_parts(node.this) + name_parts(node.expression)
    if isinstance(node, exp.Var):
        return [node.name.upper()]
    raise compilation_error(f"expected a name, found {node.sql(dialect='snowflake')}")
