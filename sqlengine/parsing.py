"""Parsing Snowflake SQL with sqlglot, and reading constant values and names out of the tree."""
from __future__ import annotations

import json
import logging
import re
from typing import Any

import sqlglot
from sqlglot import exp

from errors import UserError, compilation_error

# sqlglot warns on stderr whenever it keeps a statement it cannot model as a generic Command
# (SHOW MODELS, GRANT ROLE, …); the statement handlers parse those themselves.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


# Statements sqlglot rejects outright instead of keeping them as a generic Command; their handlers
# parse the text themselves.
UNPARSED_COMMANDS = re.compile(r"\s*(DESCRIBE|DESC)(?=\s+(USER|MODEL)\b)", re.IGNORECASE)


def parse(sql: str) -> list[exp.Expression]:
    """Every statement in `sql`, in order; syntax errors become Snowflake-style compilation errors."""
    try:
        return [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    except sqlglot.errors.ParseError as exc:
        statements = _with_commands(sql)
        if statements is not None:
            return statements
        first = exc.errors[0] if exc.errors else {}
        raise UserError(
            f"SQL compilation error: syntax error line {first.get('line', '?')} at position "
            f"{first.get('col', '?')}: {first.get('description', exc)}",
            code=1003, sqlstate="42000",
        ) from exc
    except sqlglot.errors.TokenError as exc:  # an unterminated string or quoted identifier
        raise UserError(f"SQL compilation error: {exc}. Is a quote missing or not doubled ('')?",
                          code=1003, sqlstate="42000") from exc
    except RecursionError:
        raise too_deep() from None


def too_deep() -> UserError:
    """sqlglot parses and writes SQL recursively: a statement nested some fifty levels deep (parentheses,
    function calls, subqueries) exhausts Python's stack before any limit of Snowflake's."""
    return UserError("SQL compilation error: the statement nests too deeply (parentheses, function calls or "
                       "subqueries about fifty levels deep); write it with fewer levels, e.g. with a CTE.",
                       code=1003, sqlstate="54001")


def _with_commands(sql: str) -> list[exp.Expression] | None:
    """Parse statement by statement, keeping UNPARSED_COMMANDS as Commands; None if anything else fails."""
    tokens = sqlglot.tokenize(sql, read="snowflake")
    bounds = [t.start for t in tokens if t.token_type == sqlglot.tokens.TokenType.SEMICOLON]
    chunks, start = [], 0
    for end in bounds:
        chunks.append(sql[start:end])
        start = end + 1
    chunks.append(sql[start:])
    statements: list[exp.Expression] = []
    for chunk in chunks:
        if not chunk.strip():
            continue
        match = UNPARSED_COMMANDS.match(chunk)
        if match:
            statements.append(exp.Command(this=match.group(1).upper(), expression=exp.Literal.string(chunk[match.end():].rstrip())))
            continue
        try:
            statements.extend(s for s in sqlglot.parse(chunk, read="snowflake") if s is not None)
        except sqlglot.errors.ParseError:
            return None
    return statements


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
    raise compilation_error(f"argument {node.sql(dialect='snowflake')} must be a constant here.")


def is_constant(node: exp.Expression) -> bool:
    try:
        constant(node)
    except UserError:
        return False
    return True


def cortex_call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """('FINETUNE', args) for SNOWFLAKE.CORTEX.FINETUNE(...) (or CORTEX.X / bare X), else None."""
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Anonymous):
        prefix = [p.upper() for p in dotted(node.this)]
        func = node.expression
        if prefix in (["SNOWFLAKE", "CORTEX"], ["CORTEX"]):
            return func.name.upper(), list(func.expressions)
    if isinstance(node, exp.Anonymous) and node.name.upper() in ("FINETUNE", "COMPLETE"):
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
