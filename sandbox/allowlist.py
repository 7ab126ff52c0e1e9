"""What user SQL may contain: the syntax, functions, table functions and types we support.

Every node of a parsed query must be one of these, or the query is refused before anything resolves
or runs, with Snowflake's own error ("SQL compilation error: Unknown function QUERY_TABLE"). DuckDB
has many functions Snowflake has not (query(), query_table(), read_csv(), duckdb_tables(),
current_setting(), pragma_…, getvariable()): they are refused because they are not listed here, not
because someone remembered to deny them.
"""
from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp

from errors import UserError
from sandbox.expressions import cortex_call
from sandbox.functions import CORTEX, SAMPLES, SESSION

UNKNOWN_FUNCTION = 2140

# The syntax of a query: clauses, names, literals, operators.
SYNTAX: frozenset[type[exp.Expression]] = frozenset({
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.Values,
    exp.With, exp.CTE, exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Qualify, exp.Order,
    exp.Ordered, exp.Limit, exp.Offset, exp.Distinct, exp.Window, exp.WindowSpec, exp.WithinGroup,
    exp.Filter, exp.IgnoreNulls, exp.RespectNulls, exp.Cube, exp.Rollup, exp.GroupingSets, exp.TableSample,
    exp.Table, exp.TableAlias, exp.Alias, exp.Column, exp.Identifier, exp.Star, exp.Dot, exp.Bracket,
    exp.Literal, exp.Null, exp.Boolean, exp.Var, exp.Placeholder, exp.Interval, exp.DataType,
    exp.DataTypeParam, exp.Tuple, exp.Paren, exp.Lambda, exp.Kwarg, exp.PropertyEQ, exp.Slice,
    exp.AtTimeZone, exp.Lateral, exp.Schema, exp.JSONKeyValue,
    exp.JSONPath, exp.JSONPathRoot, exp.JSONPathKey, exp.JSONPathSubscript, exp.JSONPathWildcard,
    # operators
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv, exp.DPipe, exp.Neg, exp.Not, exp.And, exp.Or,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Is, exp.In,
    exp.Between, exp.Like, exp.ILike, exp.Escape, exp.Any, exp.All, exp.Exists,
    exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
    # functions that are syntax
    exp.Case, exp.If, exp.Cast, exp.TryCast, exp.Extract, exp.Count,
})

# Statements that change a table; the sandbox prepares them whole (catalog/table_rows.py).
DML = (exp.Insert, exp.Update, exp.Delete)

# Types a CAST may name: Snowflake's types as sqlglot reads them.
T = exp.DataType.Type
TYPES: frozenset[exp.DataType.Type] = frozenset({
    T.TEXT, T.VARCHAR, T.CHAR, T.NCHAR, T.NVARCHAR, T.BINARY, T.VARBINARY,
    T.TINYINT, T.SMALLINT, T.INT, T.BIGINT, T.DECIMAL, T.FLOAT, T.DOUBLE, T.BOOLEAN,
    T.DATE, T.TIME, T.DATETIME, T.TIMESTAMP, T.TIMESTAMPNTZ, T.TIMESTAMPLTZ, T.TIMESTAMPTZ,
    T.VARIANT, T.OBJECT, T.ARRAY, T.JSON, T.STRUCT, T.MAP, T.INTERVAL, T.UNKNOWN,
})


def _outer(node: exp.Expression) -> exp.Expression:
    return node.this if isinstance(node, (exp.Window, exp.WithinGroup)) else node


@lru_cache(maxsize=1)
def functions() -> tuple[frozenset[type[exp.Expression]], frozenset[str]]:
    """(sqlglot function classes, names of functions sqlglot keeps as anonymous calls) that the
    samples of sandbox/functions.py parse to."""
    classes: set[type[exp.Expression]] = set()
    names: set[str] = set(CORTEX) | set(SESSION)
    for sample in SAMPLES:
        node = _outer(sqlglot.parse_one(f"SELECT {sample}", read="snowflake").expressions[0])
        if isinstance(node, exp.Anonymous):
            names.add(node.name.upper())
        else:
            classes.add(type(node))
    for name in SESSION:  # sqlglot has classes of their own for most of them
        node = sqlglot.parse_one(f"SELECT {name}()", read="snowflake").expressions[0]
        if not isinstance(node, exp.Anonymous):
            classes.add(type(node))
    return frozenset(classes), frozenset(names)


def unknown_function(name: str) -> UserError:
    return UserError(f"SQL compilation error: Unknown function {name}", code=UNKNOWN_FUNCTION, sqlstate="42601")


def unknown_table_function(name: str) -> UserError:
    return UserError(f"SQL compilation error: Unknown table function {name}", code=UNKNOWN_FUNCTION,
                       sqlstate="42601")


def unsupported(what: str) -> UserError:
    return UserError(f"SQL compilation error: {what} is not supported.", code=2003, sqlstate="0A000")


def function_name(node: exp.Expression) -> str:
    """The function's name as Snowflake spells it (sqlglot's own class names differ: FLATTEN is Explode)."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    written = node.sql(dialect="snowflake").split("(")[0].strip().upper()
    return written if re.fullmatch(r"[A-Z_][A-Z0-9_$]*", written) else node.sql_name()


def check(tree: exp.Expression) -> None:
    """Refuse `tree` unless every node in it is supported syntax, a supported function or table
    function, or a supported type."""
    classes, names = functions()
    for node in tree.walk():
        if node is tree and isinstance(node, DML):
            continue  # its target and clauses are checked as the nodes below
        if isinstance(node, exp.Table):
            _check_table(node)
        elif isinstance(node, exp.TableFromRows):
            _check_table_function(node)
        elif isinstance(node, exp.Lateral):
            if not isinstance(node.this, exp.Subquery):
                raise unknown_table_function(function_name(node.this) if isinstance(node.this, exp.Func)
                                             else node.this.sql(dialect="snowflake")[:40])
        elif isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            _check_qualified_call(node)
        elif isinstance(node, exp.DataType):
            if node.this not in TYPES:
                raise unsupported(f"Type {node.sql(dialect='snowflake')}")
        elif isinstance(node, exp.Anonymous):
            if node.name.upper() not in names or (node.name.upper() in CORTEX and not _is_cortex(node)):
                raise unknown_function(node.name.upper())
        elif isinstance(node, exp.Generator) and isinstance(node.parent, exp.TableFromRows):
            continue  # checked with its TABLE(…)
        elif type(node) in SYNTAX or type(node) in classes:
            continue
        elif isinstance(node, exp.Func):
            raise unknown_function(function_name(node))
        else:
            raise unsupported(_describe(node))


def _is_cortex(node: exp.Anonymous) -> bool:
    """COMPLETE / FINETUNE bare, or as CORTEX.X / SNOWFLAKE.CORTEX.X."""
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        return cortex_call(parent) is not None
    return cortex_call(node) is not None


def _check_qualified_call(node: exp.Dot) -> None:
    """db.schema.f(…) names a user-defined function; only SNOWFLAKE.CORTEX's exist here."""
    func = node.expression
    if isinstance(func, exp.Anonymous) and func.name.upper() in CORTEX and _is_cortex(func):
        return
    raise unknown_function(node.sql(dialect="snowflake").split("(")[0].upper())


# What a table reference may carry besides its name: parenthesized joins, LATERAL, SAMPLE.
TABLE_ARGUMENTS = {"this", "alias", "db", "catalog", "joins", "laterals", "sample"}


def _check_table(node: exp.Table) -> None:
    this = node.this
    if isinstance(this, exp.Identifier):
        extra = sorted(key for key, value in node.args.items() if value and key not in TABLE_ARGUMENTS)
        if extra:  # time travel (AT, BEFORE, CHANGES), PIVOT, hints, partitions …
            raise unsupported(f"{extra[0].upper()} on a table reference")
        return
    if isinstance(this, exp.Func):
        raise unknown_table_function(function_name(this))
    if isinstance(this, exp.Var) and this.name.startswith("@"):
        raise unsupported("Querying staged files (FROM @stage)")
    if isinstance(this, exp.Literal):
        raise unsupported(f"Reading a file ({this.sql(dialect='snowflake')}) in FROM")
    if isinstance(this, exp.Dot):
        raise UserError(f"SQL compilation error: invalid object name '{node.sql(dialect='snowflake')}': a name "
                          "has at most three parts, database.schema.name.", code=2003, sqlstate="42601")
    raise unsupported(_describe(this))


# TABLE(GENERATOR(ROWCOUNT => n)): the one table function sqlglot turns into DuckDB correctly.
GENERATOR_ARGUMENTS = {"rowcount"}


def _check_table_function(node: exp.TableFromRows) -> None:
    function = node.this
    if not isinstance(function, exp.Generator):
        raise unknown_table_function(function_name(function) if isinstance(function, exp.Func)
                                     else function.sql(dialect="snowflake")[:40])
    given = {key for key, value in function.args.items() if value is not None}
    if not given or given - GENERATOR_ARGUMENTS:
        raise unsupported("GENERATOR without ROWCOUNT (TIMELIMIT)")
    if not isinstance(function.args["rowcount"], exp.Literal):
        raise UserError("SQL compilation error: GENERATOR's ROWCOUNT must be a constant.", code=2003,
                          sqlstate="42601")


def _describe(node: exp.Expression) -> str:
    text = node.sql(dialect="snowflake")
    return f"'{text[:60]}'" if text else type(node).__name__
