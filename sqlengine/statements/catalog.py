"""CREATE / DROP DATABASE, SCHEMA, TABLE, VIEW; DROP MODEL; INSERT, UPDATE, DELETE, TRUNCATE; SHOW; DESCRIBE.

This module reads the statements and resolves their names against the session; the catalog's services
do the rest (catalog/databases.py, catalog/objects.py, catalog/table_rows.py, catalog/contents.py,
SHOW's catalog/listing.py through sqlengine/show.py).
"""
from __future__ import annotations

import re

from sqlglot import exp

from catalog import accountdata, contents, databases, objects, table_rows
from catalog.identifiers import QualifiedName, quote, split_parts
from errors import UserError, compilation_error
from models_registry import registry
from sandbox import names
from sandbox.expressions import constant, name_parts
from sqlengine import show
from sqlengine.results import Result, status

OBJECT_KINDS = ("DATABASE", "SCHEMA", "TABLE", "VIEW")
_DROP_MODEL = re.compile(r"\s*MODEL\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>.+?)\s*;?\s*\Z", re.IGNORECASE | re.DOTALL)


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, (exp.Create, exp.Drop)):
        return str(statement.args.get("kind") or "").upper() in OBJECT_KINDS
    if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.TruncateTable)):
        return True
    if isinstance(statement, exp.Describe):
        return str(statement.args.get("kind") or "TABLE").upper() in ("TABLE", "VIEW") and isinstance(
            statement.this, exp.Table)
    if isinstance(statement, exp.Show):
        return show.handles(statement)
    if isinstance(statement, exp.Command):
        text = _command_text(statement)
        return show.handles_command(text) or bool(re.match(r"DROP\s+MODEL\b", text, re.IGNORECASE))
    return False


def run(executor, statement: exp.Expression) -> Result:
    if isinstance(statement, exp.Create):
        return _create(executor, statement)
    if isinstance(statement, exp.Drop):
        return _drop(executor, statement)
    if isinstance(statement, exp.Insert):
        return _insert(executor, statement)
    if isinstance(statement, (exp.Update, exp.Delete)):
        return _update_or_delete(executor, statement)
    if isinstance(statement, exp.TruncateTable):
        return _truncate(executor, statement)
    if isinstance(statement, exp.Describe):
        return _describe(executor, statement)
    if isinstance(statement, exp.Show):
        return show.run(executor.session, show.from_expression(statement))
    text = _command_text(statement)
    if show.handles_command(text):
        return show.run(executor.session, show.from_command(text))
    return _drop_model(executor, text)


def _command_text(statement: exp.Command) -> str:
    rest = statement.expression
    rest = rest.name if isinstance(rest, exp.Expression) else (rest or "")
    return f"{statement.this} {rest}".strip()


# Names ------------------------------------------------------------------------------------------------

no_current = names.no_current


def resolve(session, node: exp.Expression, action: str) -> QualifiedName:
    """db.schema.name of a one-, two- or three-part name, against the session's database and schema."""
    return resolve_parts(session, name_parts(node), action)


def resolve_parts(session, parts: list[str], action: str) -> QualifiedName:
    return names.qualify(parts, session.database, session.schema, action)


def _table_node(statement: exp.Expression) -> exp.Table:
    node = statement.this
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        raise compilation_error(f"expected a table name in '{statement.sql(dialect='snowflake')[:80]}'.")
    return node


# CREATE -----------------------------------------------------------------------------------------------

def _properties(statement: exp.Create) -> list[exp.Expression]:
    props = statement.args.get("properties")
    return list(props.expressions) if props else []


def _comment(statement: exp.Create) -> str:
    for prop in _properties(statement):
        if isinstance(prop, exp.SchemaCommentProperty):
            return str(constant(prop.this))
    return ""


def _refuse_unsupported(statement: exp.Create, kind: str) -> None:
    for prop in _properties(statement):
        if isinstance(prop, (exp.TransientProperty, exp.TemporaryProperty)) or type(prop).__name__ == "VolatileProperty":
            word = "TRANSIENT" if isinstance(prop, exp.TransientProperty) else "TEMPORARY"
            raise UserError(f"CREATE {word} {kind} is not supported here: create a permanent {kind.lower()} "
                              f"(CREATE {kind} …) and drop it when done.", code=2003, sqlstate="0A000")
        if isinstance(prop, exp.LikeProperty):
            raise UserError(f"CREATE {kind} … LIKE is not supported here: use CREATE {kind} … AS SELECT * "
                              "FROM <source> LIMIT 0.", code=2003, sqlstate="0A000")
    if statement.args.get("clone"):
        raise UserError(f"CREATE {kind} … CLONE is not supported here: use CREATE {kind} … AS SELECT * FROM "
                          "<source>.", code=2003, sqlstate="0A000")


def _create(executor, statement: exp.Create) -> Result:
    kind = str(statement.args["kind"]).upper()
    _refuse_unsupported(statement, kind)
    if kind == "DATABASE":
        return _create_database(executor, statement)
    if kind == "SCHEMA":
        return _create_schema(executor, statement)
    return _create_relation(executor, statement, kind)


def _create_database(executor, statement: exp.Create) -> Result:
    parts = name_parts(statement.this)
    if len(parts) != 1:
        raise compilation_error(f"invalid database name '{statement.this.sql(dialect='snowflake')}'.")
    name = parts[0]
    if not databases.create_database(executor.session, name, replace=bool(statement.args.get("replace")),
                                     if_not_exists=bool(statement.args.get("exists")), comment=_comment(statement)):
        return status(f"{quote(name)} already exists, statement succeeded.")
    # Snowflake makes a new database (and its PUBLIC schema) current.
    executor.session.database, executor.session.schema = name, accountdata.DEFAULT_SCHEMA
    return status(f"Database {quote(name)} successfully created.")


def _create_schema(executor, statement: exp.Create) -> Result:
    parts = name_parts(statement.this)
    if len(parts) == 1:
        if not executor.session.database:
            raise no_current("CREATE SCHEMA", "database")
        parts = [executor.session.database, parts[0]]
    if len(parts) != 2:
        raise compilation_error(f"invalid schema name '{statement.this.sql(dialect='snowflake')}'.")
    database, name = parts
    if not databases.create_schema(executor.session, database, name, replace=bool(statement.args.get("replace")),
                                   if_not_exists=bool(statement.args.get("exists"))):
        return status(f"{quote(name)} already exists, statement succeeded.")
    executor.session.database, executor.session.schema = database, name
    return status(f"Schema {quote(name)} successfully created.")


def _create_relation(executor, statement: exp.Create, kind: str) -> Result:
    target = resolve(executor.session, _table_node(statement), f"CREATE {kind}")
    definitions = list(statement.this.expressions) if isinstance(statement.this, exp.Schema) else []
    created = objects.create(executor.session, objects.Creation(
        kind, target, definitions, statement.expression, replace=bool(statement.args.get("replace")),
        if_not_exists=bool(statement.args.get("exists")), comment=_comment(statement),
        text=statement.sql(dialect="snowflake")))
    if not created:
        return status(f"{quote(target.name)} already exists, statement succeeded.")
    return status(f"{kind.title()} {quote(target.name)} successfully created.")


# DROP -------------------------------------------------------------------------------------------------

def _dropped_already(name: str) -> Result:
    return status(f"Drop statement executed successfully ({name} already dropped.)")


def _drop(executor, statement: exp.Drop) -> Result:
    kind = str(statement.args["kind"]).upper()
    if_exists = bool(statement.args.get("exists"))
    session = executor.session
    (node,) = statement.args.get("tables") or [statement.this]
    if kind == "DATABASE":
        parts = name_parts(node)
        if len(parts) != 1:
            raise compilation_error(f"invalid database name '{node.sql(dialect='snowflake')}'.")
        (name,) = parts
        if not databases.drop_database(session, name, if_exists=if_exists):
            return _dropped_already(quote(name))
        if session.database == name:
            session.database = session.schema = None
        return status(f"{quote(name)} successfully dropped.")
    if kind == "SCHEMA":
        parts = name_parts(node)
        if len(parts) == 1:
            if not session.database:
                raise no_current("DROP SCHEMA", "database")
            parts = [session.database, parts[0]]
        if len(parts) != 2:
            raise compilation_error(f"invalid schema name '{node.sql(dialect='snowflake')}'.")
        database, name = parts
        if not databases.drop_schema(session, database, name, if_exists=if_exists):
            return _dropped_already(quote(name))
        if (session.database, session.schema) == (database, name):
            session.schema = None
        return status(f"{quote(name)} successfully dropped.")
    target = resolve(session, node, f"DROP {kind}")
    if not objects.drop(session, kind, target, if_exists=if_exists):
        return _dropped_already(quote(target.name))
    return status(f"{quote(target.name)} successfully dropped.")


def _drop_model(executor, text: str) -> Result:
    match = _DROP_MODEL.match(text[len("DROP"):])
    if not match:
        raise compilation_error(f"expected DROP MODEL [IF EXISTS] <name>, got '{text[:80]}'.")
    parts = split_parts(match.group("name"))
    if len(parts) > 3:
        raise compilation_error(f"invalid model name '{match.group('name')}'.")
    target = resolve_parts(executor.session, parts, "DROP MODEL")
    if not registry.drop(executor.session, target, if_exists=bool(match.group("exists"))):
        return _dropped_already(quote(target.name))
    return status(f"{quote(target.name)} successfully dropped.")


# INSERT / UPDATE / DELETE / TRUNCATE ------------------------------------------------------------------

def _insert(executor, statement: exp.Insert) -> Result:
    target = resolve(executor.session, _table_node(statement), "INSERT")
    inserted = table_rows.insert(executor.session, target, statement)
    return Result(["number of rows inserted"], [(inserted,)], ["NUMBER"])


def _update_or_delete(executor, statement: exp.Update | exp.Delete) -> Result:
    action = "UPDATE" if isinstance(statement, exp.Update) else "DELETE"
    target = resolve(executor.session, _table_node(statement), action)
    count = table_rows.update_or_delete(executor.session, target, statement)
    if action == "UPDATE":
        return Result(["number of rows updated", "number of multi-joined rows updated"], [(count, 0)],
                      ["NUMBER", "NUMBER"])
    return Result(["number of rows deleted"], [(count,)], ["NUMBER"])


def _truncate(executor, statement: exp.TruncateTable) -> Result:
    for node in statement.expressions:
        target = resolve(executor.session, node, "TRUNCATE TABLE")
        table_rows.truncate(executor.session, target, if_exists=bool(statement.args.get("exists")))
    return status("Statement executed successfully.")


# DESCRIBE ---------------------------------------------------------------------------------------------

DESCRIBE_COLUMNS = ["name", "type", "kind", "null?", "default", "primary key", "unique key", "check",
                    "expression", "comment", "policy name", "privacy domain"]


def _describe(executor, statement: exp.Describe) -> Result:
    kind = str(statement.args.get("kind") or "TABLE").upper()
    target = resolve(executor.session, statement.this, f"DESCRIBE {kind}")
    rows = [(c.name, c.type, "COLUMN", "Y" if c.nullable else "N", c.default, "N", "N", None, None, c.comment,
             None, None) for c in contents.describe(executor.session, target, kind)]
    return Result(DESCRIBE_COLUMNS, rows, ["TEXT"] * len(DESCRIBE_COLUMNS))
