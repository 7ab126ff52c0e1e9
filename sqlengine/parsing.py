"""Parsing Snowflake SQL with sqlglot into statements; syntax errors become Snowflake's compilation errors."""
from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp

from errors import UserError

# sqlglot warns on stderr whenever it keeps a statement it cannot model as a generic Command
# (SHOW MODELS, GRANT ROLE, …); the statement handlers parse those themselves.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


# Statements sqlglot rejects outright instead of keeping them as a generic Command; their handlers
# parse the text themselves.
UNPARSED_COMMANDS = re.compile(r"\s*(DESCRIBE|DESC)(?=\s+(USER|MODEL|SHARE)\b)", re.IGNORECASE)


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
