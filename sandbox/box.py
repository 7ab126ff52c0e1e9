"""One statement's DuckDB session, holding only what the statement may touch.

A statement's SQL is prepared before DuckDB sees any of it:
1. the allowlist (sandbox/allowlist.py) refuses any syntax, function, table function or type we do
   not support;
2. sqlglot's scope analysis tells every table reference from a CTE's name (a CTE is visible in the
   query it belongs to and in the CTEs after it, not in its own body);
3. each table reference is resolved with Snowflake's identifier rules against the catalog (exact
   names: `"acc"` is not ACC), checked (USAGE on its database and schema, SELECT on it; a view also
   needs its owner to hold SELECT on what it reads), and rewritten to the exact, fully qualified,
   quoted name it resolved to, so DuckDB can only read what the check allowed;
4. the databases those names live in are attached, read-only unless the statement writes to that one
   database; nothing else is, and the connection's search path holds none of them.

Then `seal()` turns off DuckDB's file, extension and replacement-scan access and locks the
configuration, so even a check we forgot cannot reach another database or the server's files.
INFORMATION_SCHEMA and SNOWFLAKE.ACCOUNT_USAGE are answered by tables this session fills with only
what the role may see (sandbox/information_schema.py, sandbox/account_usage.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import traverse_scope

from access import privileges
from access.session import Session
from catalog import accountdata
from catalog.identifiers import QualifiedName, quote_always
from catalog.models import Database, Schema, SchemaObject
from errors import UserError, compilation_error
from sandbox import account_usage, allowlist, information_schema, names, session_functions
from sandbox.expressions import name_parts
from sandbox.resolver import Resolver
from sandbox.types import snowflake_type
from sandbox.values import name_values_columns

INFORMATION_SCHEMA = "INFORMATION_SCHEMA"
# How deep views over views may nest before a query is refused (Snowflake has a limit too).
MAX_VIEW_DEPTH = 16
# What DuckDB may do once a statement is sealed: none of these can be turned back on.
SEALED_SETTINGS = ("enable_external_access", "python_enable_replacements", "autoload_known_extensions",
                   "autoinstall_known_extensions", "allow_community_extensions", "allow_unsigned_extensions")


@dataclass(frozen=True)
class Read:
    """An object a statement reads: a table or view in the catalog, or a view this session fills."""

    kind: str  # TABLE, VIEW or VIRTUAL
    name: QualifiedName


def references(tree: exp.Expression, skip: exp.Table | None = None) -> tuple[list[exp.Table], dict[int, exp.CTE]]:
    """The names in `tree`'s FROM clauses but `skip` (a DML statement's target): those of tables or
    views, and those sqlglot's scope analysis binds to a CTE (by id, with the CTE). Only a name the
    analysis places in the scope of a CTE of that name is a CTE's; every other name is a table's, to
    be resolved and checked, including one in a place the analysis does not reach (a subquery under
    INSERT … VALUES): it fails closed."""
    try:
        scopes = list(traverse_scope(tree))
    except sqlglot.errors.SqlglotError as exc:
        raise compilation_error(f"cannot resolve the names of this query: {exc}") from exc
    bound: dict[int, exp.CTE] = {}
    for scope in scopes:
        for table in scope.tables:
            source = scope.cte_sources.get(table.name)
            if source is not None and not table.args.get("db") and isinstance(table.this, exp.Identifier):
                cte = source.expression
                while cte is not None and not isinstance(cte, exp.CTE):
                    cte = cte.parent
                if cte is not None:
                    bound[id(table)] = cte
    tables = [table for table in tree.find_all(exp.Table) if table is not skip
              and isinstance(table.this, exp.Identifier) and id(table) not in bound]
    return tables, bound


def _rename_ctes(tree: exp.Expression, bound: dict[int, exp.CTE]) -> None:
    """Give every CTE a name of its own and its references that name (aliased as written): a
    reference DuckDB placed differently from sqlglot would find nothing, not a catalog view of
    DuckDB's by the same name."""
    renamed = {id(cte): f"studio_cte_{n}" for n, cte in enumerate(tree.find_all(exp.CTE), 1)}
    for cte in tree.find_all(exp.CTE):
        alias = cte.args.get("alias")
        if alias is not None:
            alias.set("this", _ident(renamed[id(cte)]))
    for table in tree.find_all(exp.Table):
        cte = bound.get(id(table))
        if cte is None:
            continue
        if table.args.get("alias") is None:
            table.set("alias", exp.TableAlias(this=table.this.copy()))
        table.set("this", _ident(renamed[id(cte)]))


def _require_placed(tree: exp.Expression) -> None:
    """Every name left for DuckDB is fully qualified or one of this statement's own CTEs."""
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue
        qualified = table.args.get("catalog") is not None and table.args.get("db") is not None
        if not qualified and not table.name.startswith("studio_cte_"):
            raise allowlist.unsupported(f"The table reference '{table.sql(dialect='snowflake')}' here")


def dml_target(statement: exp.Expression) -> exp.Table | None:
    """The table an INSERT, UPDATE or DELETE writes to."""
    if not isinstance(statement, (exp.Insert, exp.Update, exp.Delete)):
        return None
    node = statement.this
    return node.this if isinstance(node, exp.Schema) else node


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _point(table: exp.Table, catalog: str, schema: str, name: str) -> None:
    table.set("catalog", _ident(catalog))
    table.set("db", _ident(schema))
    table.set("this", _ident(name))


def fill(con: duckdb.DuckDBPyConnection, name: str, columns: tuple[tuple[str, str], ...], values) -> None:
    """Create the temporary table `name` and fill it with `values`: tuples in the columns' order, or one array
    per column (DuckDB scans numpy arrays in milliseconds where inserting row by row takes seconds
    for ten thousand rows)."""
    table = f"temp.main.{quote_always(name)}"
    con.execute(f"CREATE TEMPORARY TABLE {quote_always(name)} ({', '.join(f'{quote_always(n)} {t}' for n, t in columns)})")
    if isinstance(values, dict):
        if not len(values[columns[0][0]]):
            return
        con.register("_view_rows", values)
        try:
            names = ", ".join(quote_always(name) for name, _ in columns)
            con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _view_rows")
        finally:
            con.unregister("_view_rows")
    elif values:
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", values)


class Sandbox:
    """The DuckDB session of one statement run by `session`. `write` names the one database the
    statement changes; every other database it reads is attached read-only."""

    def __init__(self, session: Session, *, write: str | None = None, action: str = "SELECT",
                 memory_limit: str | None = None) -> None:
        if write is not None:
            privileges.require_writable(write, action, session)
        self.session = session
        self.write = write
        self.action = action
        self.resolver = Resolver(session)
        self.roles, self.held = self.resolver.roles, self.resolver.held
        self.reads: list[Read] = []
        self._attached: set[str] = set()
        self._virtual = 0
        self.sealed = False
        self.con = duckdb.connect(":memory:")
        if memory_limit:  # before seal() locks the configuration; DuckDB's default is 80% of the machine
            self.con.execute(f"SET memory_limit = '{memory_limit}'")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # Preparing ------------------------------------------------------------------------------------

    def prepare(self, tree: exp.Expression, *, database: str | None = None, schema: str | None = None
                ) -> exp.Expression:
        """A copy of the query (or INSERT / UPDATE / DELETE) `tree` ready for DuckDB: checked
        against the allowlist, every name resolved, checked and rewritten, what it reads attached.
        Names resolve against the session's database and schema, or the ones given. A DML
        statement's own target is rewritten too; its privilege is the caller's to check."""
        if database is None and schema is None:
            database, schema = self.session.database, self.session.schema
        tree = tree.copy()
        # Before identifiers are normalized: Snowflake names such columns by the text as written.
        session_functions.name_projections(tree)
        name_values_columns(tree)
        for struct in tree.find_all(exp.Struct):  # {'role': 'user'}: keys are strings, not names
            for entry in struct.expressions:
                if isinstance(entry, exp.PropertyEQ) and isinstance(entry.this, exp.Identifier):
                    entry.this.meta["case_sensitive"] = True
        tree = normalize_identifiers(tree, dialect="snowflake")
        for node in tree.walk():
            node.comments = None  # nothing of the user's text reaches DuckDB but what was parsed
        allowlist.check(tree)
        target = dml_target(tree)
        tables, ctes = references(tree, skip=target)
        if target is not None:
            name = names.qualify(name_parts(target), database, schema, self.action)
            self.attach(name.database)
            _point(target, name.database, name.schema, name.name)
        for table in tables:
            self._resolve_read(table, database, schema)
        _rename_ctes(tree, ctes)
        _require_placed(tree)
        session_functions.substitute(tree, self.session)
        return tree

    def _resolve_read(self, table: exp.Table, database: str | None, schema: str | None) -> None:
        name = names.qualify(name_parts(table), database, schema, self.action)
        if name.database == account_usage.DATABASE:
            self._virtual_table(table, name, account_usage.columns_and_rows(self.roles, name))
            return
        if name.schema == INFORMATION_SCHEMA:
            self.resolver.database(name.database)
            self.attach(name.database)
            self._virtual_table(table, name, information_schema.columns_and_rows(
                self.con, name, self.resolver.visibility(), self.held))
            return
        kind, owner = self.relation(name, "SELECT")
        if kind == "VIEW":
            self._expand_view(name, owner, depth=1, seen={name})
        self.reads.append(Read(kind, name))
        _point(table, name.database, name.schema, name.name)

    def relation(self, name: QualifiedName, privilege: str | None) -> tuple[str, str | None]:
        """(TABLE or VIEW, its owner) of the table or view `name`, once the session is known to hold
        USAGE on its database and schema and `privilege` on it (any privilege when None); its
        database is attached. Anything else is reported as not existing."""
        self.resolver.schema(name.database, name.schema)
        self.attach(name.database)
        kind = self.kind_of(name)
        if kind is None:
            raise names.object_not_found(name)
        owner = privileges.owner_of(kind, str(name))
        allowed = (self.resolver.sees(kind, str(name), owner) if privilege is None
                   else self.held.has(privilege, kind, str(name), owner))
        if not allowed:
            raise names.object_not_found(name, refused=True)
        return kind, owner

    def visible_kind(self, name: QualifiedName) -> str | None:
        """TABLE, VIEW or None (when it does not exist or the role holds nothing on it) for `name`,
        once the role may use its database and schema; its database is attached."""
        self.resolver.schema(name.database, name.schema)
        self.attach(name.database)
        kind = self.kind_of(name)
        if kind is None or not self.resolver.sees(kind, str(name), privileges.owner_of(kind, str(name))):
            return None
        return kind

    def kind_of(self, name: QualifiedName) -> str | None:
        """'TABLE', 'VIEW' or None: what an attached database holds under exactly this name."""
        row = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
            "AND table_name = ?", [name.database, name.schema, name.name]).fetchone()
        if row is None:
            return None
        return "VIEW" if row[0] == "VIEW" else "TABLE"

    # Views: what they read is checked against their owner's privileges, as in Snowflake -----------

    def _expand_view(self, view: QualifiedName, owner: str | None, *, depth: int, seen: set[QualifiedName]) -> None:
        if depth > MAX_VIEW_DEPTH:
            raise compilation_error(f"view '{view}' nests views more than {MAX_VIEW_DEPTH} deep.")
        record = SchemaObject.objects.filter(schema__database__name=view.database, schema__name=view.schema,
                                             name=view.name).first()
        if record is not None and record.text:
            # What its creator wrote is held to today's allowlist, whenever it was created.
            definition = sqlglot.parse_one(record.text, read="snowflake")
            allowlist.check(definition.expression if isinstance(definition, exp.Create) else definition)
        (sql,) = self.con.execute("SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
                                  "AND view_name = ?", [view.database, view.schema, view.name]).fetchone()
        query = sqlglot.parse_one(sql, read="duckdb")
        query = query.expression if isinstance(query, exp.Create) else query
        owner_may = Resolver(self.session, privileges.effective_roles(owner or "PUBLIC"))
        for table in references(normalize_identifiers(query, dialect="duckdb"))[0]:
            parts = [p.name for p in table.parts]
            try:
                dependency = self._owner_may_read(owner_may, names.qualify(parts, view.database, view.schema,
                                                                           "SELECT"))
            except UserError as error:
                raise UserError(f"SQL compilation error: Failure during expansion of view '{view}': {error.message}",
                                  code=error.code, sqlstate=error.sqlstate, refused=error.refused) from None
            if dependency in seen:
                raise compilation_error(f"view '{view}' reads itself.")
            if self.kind_of(dependency) == "VIEW":
                self._expand_view(dependency, privileges.owner_of("VIEW", str(dependency)), depth=depth + 1,
                                  seen=seen | {dependency})

    def _owner_may_read(self, owner: Resolver, name: QualifiedName) -> QualifiedName:
        """The catalog's name for what a view reads (DuckDB matched it regardless of case), once the
        view's owner is known to hold SELECT on it and USAGE on its database and schema."""
        database = Database.objects.filter(name__iexact=name.database).first()
        schema = database and Schema.objects.filter(database=database, name__iexact=name.schema).first()
        owner.schema(database.name if database else name.database, schema.name if schema else name.schema)
        self.attach(database.name)
        exact = self.con.execute(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_catalog = ? AND "
            "table_schema = ? AND lower(table_name) = lower(?)", [database.name, schema.name, name.name]).fetchone()
        resolved = QualifiedName(database.name, schema.name, exact[0] if exact else name.name)
        kind = "VIEW" if exact and exact[1] == "VIEW" else "TABLE"
        if exact is None or not owner.held.has("SELECT", kind, str(resolved), privileges.owner_of(kind, str(resolved))):
            raise names.object_not_found(resolved, refused=exact is not None)
        return resolved

    # Virtual tables ------------------------------------------------------------------------------

    def _virtual_table(self, table: exp.Table, name: QualifiedName, content) -> None:
        """Fill a temporary table with `content` ((column, DuckDB type) pairs and rows or columns) and
        point `table` at it, keeping the name it was written with as its alias."""
        columns, values = content
        self._virtual += 1
        temporary = f"studio_virtual_{self._virtual}"
        fill(self.con, temporary, columns, values)
        if table.args.get("alias") is None:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
        _point(table, "temp", "main", temporary)
        self.reads.append(Read("VIRTUAL", name))

    # The connection ------------------------------------------------------------------------------

    def attach(self, database: str) -> None:
        if database in self._attached:
            return
        if self.sealed:
            raise RuntimeError("a sealed sandbox attaches nothing more")
        if accountdata.database_file(database).exists():
            accountdata.attach(self.con, database, read_only=database != self.write)
        self._attached.add(database)

    @property
    def attached(self) -> set[str]:
        return set(self._attached)

    def seal(self) -> None:
        """From here on DuckDB reads no file, loads no extension, scans no Python object and accepts no
        change of these settings: only the attached databases remain reachable."""
        if self.sealed:
            return
        for setting in SEALED_SETTINGS:
            self.con.execute(f"SET {setting} = false")
        self.con.execute("SET lock_configuration = true")
        self.sealed = True

    def execute(self, sql: str, parameters: list | None = None) -> duckdb.DuckDBPyConnection:
        self.seal()
        return self.con.execute(sql, parameters) if parameters is not None else self.con.execute(sql)

    def stream(self, sql: str, batch_rows: int) -> Any:
        """A prepared query's rows as a pyarrow RecordBatchReader of batch_rows-row batches, read from
        DuckDB as they are consumed (execute() would hold the whole result first)."""
        self.seal()
        return self.con.sql(sql).to_arrow_reader(batch_rows)

    def fetch(self, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """A prepared query's column names, their Snowflake types and its rows, with each JSON value
        parsed (DuckDB returns them as text)."""
        cursor = self.execute(sql)
        description = cursor.description
        rows = cursor.fetchall()
        json_columns = [i for i, d in enumerate(description) if str(d[1]) == "JSON"]
        if json_columns:
            rows = [_parse_json(row, json_columns) for row in rows]
        return [d[0] for d in description], [snowflake_type(str(d[1])) for d in description], rows


def _parse_json(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    return tuple(values)

