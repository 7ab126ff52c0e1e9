"""CREATE / DROP DATABASE, SCHEMA, TABLE, VIEW; DROP MODEL; INSERT, UPDATE, DELETE, TRUNCATE; SHOW; DESCRIBE.

Tables and views live in DuckDB (one file per database, catalog/accountdata.py); databases, schemas
and the owners of tables and views in the metadata database. A statement changes DuckDB inside one
DuckDB transaction nested in a Django one, so a failure leaves neither half-done.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

import duckdb
import sqlglot
from django.db import transaction
from sqlglot import exp

from access import privileges
from catalog import accountdata, datatypes, stages
from catalog.identifiers import QualifiedName, quote, quote_always, split_parts
from catalog.models import SchemaObject
from errors import UserError, compilation_error
from inference import deployment
from models_registry.models import FineTunedModel
from sandbox import names
from sandbox.box import Sandbox
from sandbox.expressions import constant, name_parts
from sandbox.resolver import Resolver
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


def _object_kind(con: duckdb.DuckDBPyConnection, target: QualifiedName) -> str | None:
    """'TABLE', 'VIEW' or None: what DuckDB holds under the name."""
    row = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
        "AND table_name = ?", [target.database, target.schema, target.name]).fetchone()
    if row is None:
        return None
    return "VIEW" if row[0] == "VIEW" else "TABLE"


does_not_exist = names.object_not_found


def _wrong_kind(found: str, wanted: str) -> UserError:
    return UserError(f"SQL compilation error: Object found is of type '{found}', not specified type '{wanted}'.",
                       code=2002, sqlstate="42710")


def _already_exists(name: str) -> UserError:
    return UserError(f"SQL compilation error: Object '{name}' already exists.", code=2002, sqlstate="42710")


def _execute(con: duckdb.DuckDBPyConnection, sql: str):
    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        raise compilation_error(accountdata.duckdb_message(exc)) from exc


@transaction.atomic
def _write(target: QualifiedName, box: Sandbox, steps) -> object:
    """Run `steps(con)` in one DuckDB transaction of the statement's sandbox, where only
    `target.database` is writable; Django changes made by `steps` roll back with it."""
    box.attach(target.database)
    box.seal()
    con = box.con
    con.execute("BEGIN")
    try:
        outcome = steps(con)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return outcome


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
    # CREATE DATABASE is an account privilege that SYSADMIN (and ACCOUNTADMIN above it) holds.
    if not privileges.has_any_role(executor.session, "SYSADMIN", "ACCOUNTADMIN"):
        raise privileges.insufficient("database", quote(name))
    exists = accountdata.Database.objects.filter(name=name).exists()
    if exists and statement.args.get("exists"):
        return status(f"{quote(name)} already exists, statement succeeded.")
    if exists and statement.args.get("replace"):
        privileges.require_ownership(executor.session, "DATABASE", privileges.key(name))
        accountdata.drop_database(name)
    accountdata.create_database(quote(name), executor.session.role, comment=_comment(statement))
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
    Resolver(executor.session).database(database, usage=False)
    privileges.require(executor.session, "CREATE SCHEMA", "DATABASE", privileges.key(database))
    exists = accountdata.Schema.objects.filter(database__name=database, name=name).exists()
    if exists and statement.args.get("exists"):
        return status(f"{quote(name)} already exists, statement succeeded.")
    if exists and statement.args.get("replace"):
        privileges.require_ownership(executor.session, "SCHEMA", privileges.key(database, name))
        accountdata.drop_schema(database, name)
    accountdata.create_schema(database, name, executor.session.role)
    executor.session.database, executor.session.schema = database, name
    return status(f"Schema {quote(name)} successfully created.")


@dataclass
class _Column:
    name: str
    duckdb_sql: str
    declared: str
    comment: str | None


def _columns(definitions: list[exp.Expression]) -> list[_Column]:
    columns = []
    for definition in definitions:
        if not isinstance(definition, exp.ColumnDef):
            raise compilation_error(f"unsupported table element {definition.sql(dialect='snowflake')}.")
        (name,) = name_parts(definition.this)
        datatype = definition.args.get("kind")
        if datatype is None:
            raise compilation_error(f"column {quote(name)} needs a type.")
        comment, constraints = None, []
        for constraint in definition.args.get("constraints") or []:
            if isinstance(constraint.args.get("kind"), exp.CommentColumnConstraint):
                comment = str(constant(constraint.args["kind"].this))
            else:
                constraints.append(constraint.sql(dialect="duckdb"))
        sql = " ".join([quote_always(name), datatypes.to_duckdb(datatype), *constraints])
        columns.append(_Column(name, sql, datatypes.declared(datatype), comment))
    return columns


def _create_relation(executor, statement: exp.Create, kind: str) -> Result:
    session = executor.session
    target = resolve(session, _table_node(statement), f"CREATE {kind}")
    schema = Resolver(session).schema(target.database, target.schema, usage=False)
    definitions = list(statement.this.expressions) if isinstance(statement.this, exp.Schema) else []
    query = statement.expression
    if kind == "VIEW" and query is None:
        raise compilation_error("CREATE VIEW needs AS SELECT ….")
    if kind == "TABLE" and query is None and not definitions:
        raise compilation_error("CREATE TABLE needs a column list or AS SELECT ….")
    view_columns = [name_parts(d)[0] for d in definitions] if kind == "VIEW" else []
    columns = _columns(definitions) if kind != "VIEW" else []
    privileges.require_create_in_schema(session, kind, target.database, target.schema)
    with Sandbox(session, write=target.database, action=f"CREATE {kind}") as box:
        steps, replaced = _creation_steps(session, box, statement, kind, target, schema, columns, view_columns)
        created = _write(target, box, steps)
    if replaced == ["TABLE"]:  # a replaced table's stage goes with it, as in Snowflake
        stages.drop_table_stages(*_parts(target))
    if not created:
        return status(f"{quote(target.name)} already exists, statement succeeded.")
    return status(f"{kind.title()} {quote(target.name)} successfully created.")


def _creation_steps(session, box: Sandbox, statement: exp.Create, kind: str, target: QualifiedName, schema,
                    columns: list[_Column], view_columns: list[str]):
    """What CREATE TABLE / VIEW does inside its DuckDB transaction, once its query is prepared, and the
    kind of what OR REPLACE dropped (filled in as it runs)."""
    query = statement.expression
    replace, if_not_exists = bool(statement.args.get("replace")), bool(statement.args.get("exists"))
    prepared = None
    replaced: list[str] = []
    if query is not None:
        # A view's unqualified names mean what they mean in the view's own schema, whoever reads it.
        context = (target.database, target.schema) if kind == "VIEW" else (session.database, session.schema)
        prepared = box.prepare(query, database=context[0], schema=context[1])
        if kind == "VIEW" and any(read.kind == "VIRTUAL" for read in box.reads):
            raise UserError("SQL compilation error: a view cannot read INFORMATION_SCHEMA or "
                              "SNOWFLAKE.ACCOUNT_USAGE here: they are answered per query, not stored.",
                              code=2003, sqlstate="0A000")
    relation = quote_always(*_parts(target))

    def steps(con):
        existing = _object_kind(con, target)
        if existing and if_not_exists:
            return False
        if existing and existing != kind:
            raise _wrong_kind(existing, kind)
        if existing and not replace:
            raise _already_exists(quote(target.name))
        if existing:
            privileges.require_ownership(session, kind, str(target))
            _execute(con, f"DROP {kind} {relation}")
            replaced.append(existing)
        if kind == "VIEW":
            names = f" ({', '.join(quote_always(c) for c in view_columns)})" if view_columns else ""
            _execute(con, f"CREATE VIEW {relation}{names} AS {prepared.sql(dialect='duckdb')}")
        elif columns:
            _execute(con, f"CREATE TABLE {relation} ({', '.join(c.duckdb_sql for c in columns)})")
            for column in columns:
                if column.comment is not None:
                    # COMMENT ON takes no parameters in DuckDB.
                    text = "'" + column.comment.replace("'", "''") + "'"
                    _execute(con, f"COMMENT ON COLUMN {relation}.{quote_always(column.name)} IS {text}")
            if prepared is not None:
                _execute(con, f"INSERT INTO {relation} {prepared.sql(dialect='duckdb')}")
        else:
            _execute(con, f"CREATE TABLE {relation} AS {prepared.sql(dialect='duckdb')}")
        SchemaObject.objects.filter(schema=schema, name=target.name).delete()
        SchemaObject.objects.create(
            schema=schema, name=target.name, kind=kind, owner_role=session.role, comment=_comment(statement),
            text=statement.sql(dialect="snowflake") if kind == "VIEW" else "",
            column_types={c.name: c.declared for c in columns},
        )
        return True

    return steps, replaced


# DROP -------------------------------------------------------------------------------------------------

def _dropped_already(name: str) -> Result:
    return status(f"Drop statement executed successfully ({name} already dropped.)")


def _drop(executor, statement: exp.Drop) -> Result:
    kind = str(statement.args["kind"]).upper()
    if_exists = bool(statement.args.get("exists"))
    session = executor.session
    (node,) = statement.args.get("tables") or [statement.this]
    resolver = Resolver(session)
    if kind == "DATABASE":
        parts = name_parts(node)
        if len(parts) != 1:
            raise compilation_error(f"invalid database name '{node.sql(dialect='snowflake')}'.")
        (name,) = parts
        try:
            resolver.database(name, usage=False)
        except UserError:
            if if_exists:  # one the role may not see is as dropped as one that does not exist
                return _dropped_already(quote(name))
            raise
        privileges.require_ownership(session, "DATABASE", privileges.key(name))
        accountdata.drop_database(name)
        stages.drop_table_stages(name)
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
        try:
            resolver.schema(database, name, usage=False)
        except UserError:
            if if_exists:
                return _dropped_already(quote(name))
            raise
        privileges.require_ownership(session, "SCHEMA", privileges.key(database, name))
        accountdata.drop_schema(database, name)
        stages.drop_table_stages(database, name)
        if (session.database, session.schema) == (database, name):
            session.schema = None
        return status(f"{quote(name)} successfully dropped.")

    target = resolve(session, node, f"DROP {kind}")

    def steps(con):
        if existing != kind:
            raise _wrong_kind(existing, kind)
        privileges.require_ownership(session, kind, str(target))
        _execute(con, f"DROP {kind} {quote_always(*_parts(target))}")
        SchemaObject.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                    name=target.name).delete()
        return True

    with Sandbox(session, write=target.database, action=f"DROP {kind}") as box:
        try:
            existing = box.visible_kind(target)
        except UserError:
            existing = None
            if not if_exists:
                raise
        if existing is None:
            if if_exists:
                return _dropped_already(quote(target.name))
            raise UserError(f"SQL compilation error: {kind.title()} '{target}' does not exist or not authorized.",
                              code=2003, sqlstate="02000")
        _write(target, box, steps)
    if kind == "TABLE":  # once the drop has committed: its stage goes with it, as in Snowflake
        stages.drop_table_stages(*_parts(target))
    return status(f"{quote(target.name)} successfully dropped.")


def _parts(target: QualifiedName) -> tuple[str, str, str]:
    return target.database, target.schema, target.name


def _drop_model(executor, text: str) -> Result:
    match = _DROP_MODEL.match(text[len("DROP"):])
    if not match:
        raise compilation_error(f"expected DROP MODEL [IF EXISTS] <name>, got '{text[:80]}'.")
    session = executor.session
    parts = split_parts(match.group("name"))
    if len(parts) > 3:
        raise compilation_error(f"invalid model name '{match.group('name')}'.")
    target = resolve_parts(session, parts, "DROP MODEL")
    model = FineTunedModel.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                          name=target.name).first()
    if model is None:
        if match.group("exists"):
            return _dropped_already(quote(target.name))
        raise UserError(f"SQL compilation error: Model '{target}' does not exist or not authorized.",
                          code=2003, sqlstate="02000")
    privileges.require_ownership(session, "MODEL", str(target))
    adapter = model.adapter_dir
    model.delete()
    # Deleted first, so no COMPLETE routes to it meanwhile; undeployed before its files go. A server that
    # is down is logged by undeploy() and does not stop the drop.
    deployment.undeploy(model)
    if model.adapter_path:
        shutil.rmtree(adapter, ignore_errors=True)
    return status(f"{quote(target.name)} successfully dropped.")


# INSERT / UPDATE / DELETE / TRUNCATE ------------------------------------------------------------------

def _existing_table(con, target: QualifiedName) -> None:
    kind = _object_kind(con, target)
    if kind is None:
        raise does_not_exist(target)
    if kind != "TABLE":
        raise compilation_error(f"'{target}' is a view; only tables can be changed.")


def _require_change(box: Sandbox, privilege: str, target: QualifiedName) -> None:
    """INSERT / UPDATE / DELETE / TRUNCATE on the target table (its owner holds them all), once the role
    may use its database and schema and holds some privilege on it: without those it does not exist
    for the role. What else the statement reads, the sandbox checks as it prepares it."""
    kind = box.visible_kind(target)
    if kind is None:
        raise does_not_exist(target)
    if kind != "TABLE":
        raise compilation_error(f"'{target}' is a view; only tables can be changed.")
    privileges.require(box.session, privilege, "TABLE", str(target), roles=box.roles)


def _insert(executor, statement: exp.Insert) -> Result:
    session = executor.session
    node = _table_node(statement)
    target = resolve(session, node, "INSERT")
    with Sandbox(session, write=target.database, action="INSERT") as box:
        _require_change(box, "INSERT", target)
        rewritten = box.prepare(statement)
        if isinstance(rewritten.this, exp.Schema):
            rewritten.this.set("expressions", [exp.to_identifier(name_parts(c)[0], quoted=True)
                                               for c in rewritten.this.expressions])
        overwrite = bool(rewritten.args.get("overwrite"))
        rewritten.set("overwrite", False)

        def steps(con):
            _existing_table(con, target)
            if overwrite:
                _execute(con, f"DELETE FROM {quote_always(*_parts(target))}")
            return _execute(con, rewritten.sql(dialect="duckdb")).fetchone()[0]

        inserted = _write(target, box, steps)
    return Result(["number of rows inserted"], [(int(inserted),)], ["NUMBER"])


def _update_or_delete(executor, statement: exp.Update | exp.Delete) -> Result:
    session = executor.session
    node = _table_node(statement)
    action = "UPDATE" if isinstance(statement, exp.Update) else "DELETE"
    target = resolve(session, node, action)
    with Sandbox(session, write=target.database, action=action) as box:
        _require_change(box, action, target)
        rewritten = box.prepare(statement)

        def steps(con):
            _existing_table(con, target)
            return _execute(con, rewritten.sql(dialect="duckdb")).fetchone()[0]

        count = int(_write(target, box, steps))
    if action == "UPDATE":
        return Result(["number of rows updated", "number of multi-joined rows updated"], [(count, 0)],
                      ["NUMBER", "NUMBER"])
    return Result(["number of rows deleted"], [(count,)], ["NUMBER"])


def _truncate(executor, statement: exp.TruncateTable) -> Result:
    session = executor.session
    for node in statement.expressions:
        target = resolve(session, node, "TRUNCATE TABLE")

        def steps(con, target=target):
            _existing_table(con, target)
            _execute(con, f"DELETE FROM {quote_always(*_parts(target))}")

        with Sandbox(session, write=target.database, action="TRUNCATE TABLE") as box:
            try:
                _require_change(box, "TRUNCATE", target)
            except UserError as error:
                if statement.args.get("exists") and not error.code == privileges.INSUFFICIENT_PRIVILEGES:
                    continue  # missing, or as good as missing to this role
                raise
            _write(target, box, steps)
    return status("Statement executed successfully.")


# DESCRIBE ---------------------------------------------------------------------------------------------

DESCRIBE_COLUMNS = ["name", "type", "kind", "null?", "default", "primary key", "unique key", "check",
                    "expression", "comment", "policy name", "privacy domain"]


def _describe(executor, statement: exp.Describe) -> Result:
    session = executor.session
    kind = str(statement.args.get("kind") or "TABLE").upper()
    target = resolve(session, statement.this, f"DESCRIBE {kind}")
    record = SchemaObject.objects.filter(schema__database__name=target.database, schema__name=target.schema,
                                         name=target.name).first()
    declared = record.column_types if record else {}
    with Sandbox(session, action=f"DESCRIBE {kind}") as box:
        # Any privilege on the object lets a role describe it; without one it does not exist for the role.
        found, _owner = box.relation(target, privilege=None)
        if kind == "VIEW" and found != "VIEW":
            raise does_not_exist(target)
        rows = box.execute(
            "SELECT column_name, data_type, is_nullable, column_default, comment FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
            list(_parts(target))).fetchall()
    out = []
    for name, duckdb_type, nullable, default, comment in rows:
        shown = declared.get(name)
        if shown is None or datatypes.from_duckdb(duckdb_type) != _stored_as(shown):
            shown = datatypes.from_duckdb(duckdb_type)
        out.append((name, shown, "COLUMN", "Y" if nullable else "N", default, "N", "N", None, None, comment,
                    None, None))
    return Result(DESCRIBE_COLUMNS, out, ["TEXT"] * len(DESCRIBE_COLUMNS))


def _stored_as(declared_type: str) -> str:
    """What DESCRIBE would show for a declared type once DuckDB has stored it."""
    datatype = sqlglot.parse_one(f"CAST(NULL AS {declared_type})", read="snowflake").to
    return datatypes.from_duckdb(datatypes.to_duckdb(datatype))
