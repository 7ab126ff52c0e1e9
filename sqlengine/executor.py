"""Runs statements in Snowflake's dialect against a session.

The skeleton covers USE, the Cortex functions (FINETUNE, COMPLETE) with constant arguments, and
read-only SELECTs on account data; the full SQL surface builds on this module.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from access.session import Session
from catalog import accountdata
from inference import complete as complete_service
from jobs import finetune
from studio.errors import StudioError, compilation_error
from warehouses.models import Warehouse


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def _constant(node: exp.Expression) -> Any:
    """The Python value of a constant argument: strings, numbers, NULL, [arrays], {objects}, PARSE_JSON."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(node, exp.Neg):
        return -_constant(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Array):
        return [_constant(e) for e in node.expressions]
    if isinstance(node, exp.Struct):
        out = {}
        for item in node.expressions:
            if isinstance(item, (exp.PropertyEQ, exp.EQ)):
                key = item.this.name if isinstance(item.this, (exp.Identifier, exp.Column)) else _constant(item.this)
                out[str(key)] = _constant(item.expression)
            else:
                raise compilation_error(f"unsupported object entry {item.sql(dialect='snowflake')}")
        return out
    if isinstance(node, exp.ParseJSON):
        return json.loads(_constant(node.this))
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    raise compilation_error(
        f"argument {node.sql(dialect='snowflake')} must be a constant here; "
        "Cortex functions over table rows come with the full SQL surface."
    )


def _cortex_call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """('FINETUNE', args) for SNOWFLAKE.CORTEX.FINETUNE(...) (or CORTEX.X / bare X), else None."""
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Anonymous):
        prefix = [p.upper() for p in _dotted(node.this)]
        func = node.expression
        if prefix in (["SNOWFLAKE", "CORTEX"], ["CORTEX"]):
            return func.name.upper(), list(func.expressions)
    if isinstance(node, exp.Anonymous) and node.name.upper() in ("FINETUNE", "COMPLETE"):
        return node.name.upper(), list(node.expressions)
    return None


def _dotted(node: exp.Expression) -> list[str]:
    if isinstance(node, exp.Dot):
        return _dotted(node.this) + _dotted(node.expression)
    if isinstance(node, (exp.Identifier, exp.Column, exp.Var)):
        return [node.name]
    return [node.sql()]


class Executor:
    def __init__(self, session: Session) -> None:
        self.session = session

    def execute(self, sql: str) -> list[Result]:
        return list(self.execute_each(sql))

    def execute_each(self, sql: str) -> Iterator[Result]:
        """Run the statements in order, yielding each result as soon as it exists."""
        try:
            statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
        except sqlglot.errors.ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            raise StudioError(
                f"SQL compilation error: syntax error line {first.get('line', '?')} at position "
                f"{first.get('col', '?')}: {first.get('description', exc)}",
                code=1003, sqlstate="42000",
            ) from exc
        except sqlglot.errors.TokenError as exc:  # an unterminated string or quoted identifier
            raise StudioError(f"SQL compilation error: {exc}. Is a quote missing or not doubled ('')?",
                              code=1003, sqlstate="42000") from exc
        for statement in statements:
            yield self.run(statement)

    def run(self, statement: exp.Expression) -> Result:
        if isinstance(statement, exp.Use):
            return self.use(statement)
        if isinstance(statement, exp.Select):
            projections = statement.expressions
            if not statement.args.get("from") and any(_cortex_call(p.unalias()) for p in projections):
                return self.select_constants(statement)
            return self.select(statement)
        raise compilation_error(f"statement '{statement.sql(dialect='snowflake')[:60]}' is not supported yet.")

    def use(self, statement: exp.Use) -> Result:
        kind = (statement.args.get("kind").name if statement.args.get("kind") else "DATABASE").upper()
        target = statement.this
        parts = [p.name if p.quoted else p.name.upper() for p in target.parts] if target else []
        if kind == "ROLE":
            self.session.role = parts[-1]
        elif kind == "WAREHOUSE":
            if not Warehouse.objects.filter(name=parts[-1]).exists():
                raise StudioError(f"Object does not exist, or operation cannot be performed: warehouse '{parts[-1]}'.",
                                  code=2043, sqlstate="02000")
            self.session.warehouse = parts[-1]
        elif kind == "DATABASE":
            accountdata.get_database(parts[-1])
            self.session.database, self.session.schema = parts[-1], accountdata.DEFAULT_SCHEMA
        elif kind == "SCHEMA":
            database = parts[0] if len(parts) == 2 else self.session.database
            if not database:
                raise StudioError("Cannot use schema: this session has no current database.", code=90105, sqlstate="22000")
            accountdata.get_schema(database, parts[-1])
            self.session.database, self.session.schema = database, parts[-1]
        else:
            raise compilation_error(f"USE {kind} is not supported.")
        return Result(["status"], [("Statement executed successfully.",)])

    def select_constants(self, statement: exp.Select) -> Result:
        columns, values = [], []
        for projection in statement.expressions:
            columns.append(projection.alias.upper() if projection.alias else projection.unalias().sql(dialect="snowflake"))
            values.append(self.evaluate(projection.unalias()))
        return Result(columns, [tuple(values)])

    def evaluate(self, node: exp.Expression) -> Any:
        call = _cortex_call(node)
        if call is None:
            return _constant(node)
        name, args = call
        values = [_constant(a) for a in args]
        if name == "FINETUNE":
            return self.finetune(values)
        if name == "COMPLETE":
            if len(values) not in (2, 3):
                raise compilation_error("COMPLETE takes (model, prompt) or (model, messages, options).")
            return complete_service.complete(self.session, *values)
        raise compilation_error(f"Unknown function SNOWFLAKE.CORTEX.{name}.")

    def finetune(self, values: list[Any]) -> Any:
        if not values or not isinstance(values[0], str):
            raise compilation_error("FINETUNE's first argument must be 'CREATE', 'SHOW', 'DESCRIBE' or 'CANCEL'.")
        action, rest = values[0].upper(), values[1:]
        if action == "CREATE":
            if not 3 <= len(rest) <= 5:
                raise compilation_error("FINETUNE('CREATE', name, base_model, training_query "
                                        "[, validation_query [, options]]) takes 3 to 5 arguments after 'CREATE'.")
            return finetune.create(self.session, *rest)
        if action == "SHOW":
            return finetune.show(self.session)
        if action in ("DESCRIBE", "CANCEL"):
            if len(rest) != 1:
                raise compilation_error(f"FINETUNE('{action}', job_id) takes one job id.")
            return (finetune.describe if action == "DESCRIBE" else finetune.cancel)(self.session, rest[0])
        raise compilation_error(f"FINETUNE action '{values[0]}' is not one of CREATE, SHOW, DESCRIBE, CANCEL.")

    def select(self, statement: exp.Select) -> Result:
        columns, rows = accountdata.run_query(statement.sql(dialect="snowflake"), self.session.database,
                                              self.session.schema)
        return Result(columns, rows)


def format_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return "NULL" if value is None else str(value)


def format_table(result: Result) -> str:
    header = [str(c) for c in result.columns]
    body = [[format_value(v) for v in row] for row in result.rows]
    widths = [max([len(header[i])] + [len(r[i]) for r in body]) for i in range(len(header))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", line]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in body]
    out.append(line)
    return "\n".join(out)


def to_json(result: Result) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [list(r) for r in result.rows]}

