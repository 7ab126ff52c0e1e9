"""VALUES lists as Snowflake names their columns: COLUMN1, COLUMN2, …, also reachable as $1, $2, ….

Snowpark's create_dataframe() sends `SELECT $1 AS "N", $2 AS "S" FROM VALUES (1 :: INT, 'x'), …`; DuckDB
names VALUES columns col0, col1 and has no $n. So an unaliased VALUES source is given the alias
(COLUMN1, …) and each $n of the SELECT it feeds becomes COLUMNn. $n over a table (positional columns of
a table or a staged file) stays unsupported, refused by the allowlist as before.
"""
from __future__ import annotations

from sqlglot import exp


def name_values_columns(tree: exp.Expression) -> None:
    for values in list(tree.find_all(exp.Values)):
        if not isinstance(values.parent, (exp.From, exp.Join)) or not values.expressions:
            continue
        first = values.expressions[0]
        width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
        alias = values.args.get("alias")
        if alias is None or not alias.columns:
            table = alias.this if alias is not None and alias.this is not None else exp.to_identifier("VALUES")
            values.set("alias", exp.TableAlias(this=table, columns=[exp.to_identifier(f"COLUMN{i}")
                                                                     for i in range(1, width + 1)]))
        select = values.parent.parent if isinstance(values.parent, exp.From) else None
        if isinstance(select, exp.Select):
            _positions_to_names(select, width)


def _positions_to_names(select: exp.Select, width: int) -> None:
    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Subquery) or (isinstance(node, exp.Select) and node is not select):
            return node  # a nested query's $n refers to its own source
        if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            position = int(node.this.this)
            if 1 <= position <= width:
                return exp.column(f"COLUMN{position}")
        return node

    for key in ("expressions", "where", "group", "having", "order", "qualify"):
        value = select.args.get(key)
        if isinstance(value, list):
            select.set(key, [item.transform(replace) for item in value])
        elif isinstance(value, exp.Expression):
            select.set(key, value.transform(replace))
