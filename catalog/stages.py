"""Internal stages: the user stage @~, table stages @%table and named stages, as folders on local disk.

A stage is a folder of files under STAGE_DIR:

    user/<user name>/files/…                the user stage @~ of each user
    table/<database>/<schema>/<table>/files/… the stage @%table of each table
    named/<stage id>/files/…                a named stage (by id, so a re-created stage starts empty)

beside each `files/` folder a `md5/` folder caches each file's MD5 (catalog/stage_files.py handles the
files themselves).

Who may use a stage is decided here, in resolve(), for every entry point (LIST, GET, REMOVE, PUT, COPY's
source, the upload endpoint, the Data page), with Snowflake's rules:
- a named stage: USAGE on its database and schema, then READ (LIST, GET, DESCRIBE, COPY INTO <table>) or
  WRITE (PUT, upload, REMOVE); its owner holds both. A role holding neither is told the stage does not
  exist, as Snowflake tells it;
- a table stage @db.s.%t: the table's owner only, except that COPY INTO t FROM @%t needs only INSERT on t;
- the user stage @~: the session's own user, whatever the role; no name reaches another user's.
"""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from django.conf import settings

from access import privileges
from access.models import Grant
from catalog import accountdata
from catalog.identifiers import quote, split_parts
from catalog.models import Stage
from errors import UserError, compilation_error
from sandbox.resolver import Resolver

# The privileges on a stage (GRANT READ, WRITE ON STAGE …): what an operation needs, passed to resolve().
READ, WRITE = "READ", "WRITE"


def _safe(name: str) -> str:
    # Quoted identifiers may hold any character; keep folder names portable (as accountdata does). A
    # leading dot is encoded too: a user or database named "." or ".." would otherwise be a folder
    # above its own, whose LIST walks into other stages.
    safe = re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"%{ord(m.group()):02X}", name)
    return "%2E" + safe[1:] if safe.startswith(".") else safe


@dataclass
class StageRef:
    """A parsed stage location: `@~/path`, `@[db.schema.]%table/path` or `@[db.schema.]name/path`."""

    kind: str  # "user", "table" or "named"
    parts: list[str]  # the (possibly qualified) table or stage name; empty for the user stage
    path: str  # the prefix inside the stage, without a leading slash

    @classmethod
    def parse(cls, text: str) -> StageRef:
        text = text.strip()
        if text.startswith("'") and text.endswith("'") and len(text) > 1:
            text = text[1:-1]
        if not text.startswith("@"):
            raise compilation_error(f"expected a stage location starting with @, found '{text}'.")
        body = text[1:]
        if body.startswith("~"):
            rest = body[1:]
            if rest and not rest.startswith("/"):
                raise compilation_error(f"invalid stage location '{text}'.")
            return cls("user", [], rest.lstrip("/"))
        name, path = _split_name(body)
        if not name:
            raise compilation_error(f"invalid stage location '{text}': the stage name is missing.")
        pieces = name.split(".")
        last = pieces[-1]
        kind = "named"
        if last.startswith("%"):
            kind, pieces[-1] = "table", last[1:]
        elif name.startswith("%"):  # @%db.schema.table is not Snowflake's spelling but is unambiguous
            kind, name = "table", name[1:]
            pieces = name.split(".")
        return cls(kind, split_parts(".".join(pieces)), path.lstrip("/"))


def _split_name(body: str) -> tuple[str, str]:
    """Split `db."my stage"/a/b` at the first slash outside double quotes."""
    quoted = False
    for i, ch in enumerate(body):
        if ch == '"':
            quoted = not quoted
        elif ch == "/" and not quoted:
            return body[:i], body[i + 1:]
    return body, ""


@dataclass
class StageLocation:
    """A resolved stage: where its files are, and how LIST and COPY name them."""

    display: str  # @~, @%T or @DB.SCHEMA.NAME
    prefix: str  # what LIST prints before each path ("" for user and table stages, "name/" otherwise)
    root: Path
    table: tuple[str, str, str] | None = None

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    def file_path(self, relative: str) -> Path:
        return self.files_dir / clean_relative(relative)

    def md5_path(self, relative: str) -> Path:
        return self.root / "md5" / (clean_relative(relative) + ".md5")


# What one folder or file name of a stage's path may be: the file systems' own limit, in bytes.
MAX_NAME_BYTES = 255


def clean_relative(relative: str) -> str:
    """A path inside a stage: no absolute paths, no `..`, no hidden names (the writers' temporaries), no
    control characters, no name longer than a file system allows."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UserError(f"Invalid file name '{relative}' for a stage: use a relative path without '..'.",
                          code=1003, sqlstate="22023")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in relative):
        raise UserError(f"Invalid file name {relative!r} for a stage: it holds a control character.",
                          code=1003, sqlstate="22023")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise UserError(f"Invalid file name '{relative[:80]}…' for a stage: each part of a path may be at most "
                          f"{MAX_NAME_BYTES} bytes long.", code=1003, sqlstate="22023")
    return "/".join(parts)


def resolve(ref: StageRef, session, privilege: str, *, loading_into: tuple[str, str, str] | None = None
            ) -> StageLocation:
    """Where the stage's files live, once the session may use it for an operation needing `privilege`
    (READ or WRITE); `loading_into` is the table a COPY loads, whose own stage its INSERT holders may
    read. Raises Snowflake's error: the stage (or table) does not exist or not authorized when the role
    may not see it, insufficient privileges when it may see but not do this."""
    if privilege not in (READ, WRITE):
        raise ValueError(f"a stage operation needs READ or WRITE, not {privilege!r}")
    base = Path(settings.STAGE_DIR)
    if ref.kind == "user":
        if session.user is None:
            raise UserError("The user stage @~ belongs to a user, and this session has none.",
                              code=2003, sqlstate="02000")
        return StageLocation("@~", "", user_stage_root(session.user))
    database, schema, name = qualify(ref.parts, session, what="stage")
    resolver = Resolver(session)
    if ref.kind == "table":
        _authorize_table_stage(resolver, (database, schema, name), privilege, loading_into)
        return StageLocation(f"@{quote(database)}.{quote(schema)}.%{quote(name)}", "",
                             table_stage_root(database, schema, name), table=(database, schema, name))
    stage = _authorized_stage(resolver, database, schema, name, privilege)
    return StageLocation(f"@{quote(database)}.{quote(schema)}.{quote(name)}", f"{name.lower()}/", named_root(stage))


def user_stage_root(user) -> Path:
    """A user's stage, by the user's id: a renamed user keeps its files, and a user created later under a
    dropped one's name does not get them. A folder named after the user (how earlier versions kept
    it) moves here the first time it is used."""
    root = Path(settings.STAGE_DIR) / "user" / f"id-{user.pk}"
    legacy = Path(settings.STAGE_DIR) / "user" / _safe(user.get_username())
    if not root.exists() and legacy.is_dir():
        legacy.rename(root)
    return root


def drop_user_stage(user) -> None:
    """DROP USER takes the user's stage with it."""
    shutil.rmtree(user_stage_root(user), ignore_errors=True)


def table_stage_root(database: str, schema: str | None = None, table: str | None = None) -> Path:
    """The folder of a table's stage, or of every table stage in a schema or database."""
    root = Path(settings.STAGE_DIR) / "table" / _safe(database)
    if schema is not None:
        root = root / _safe(schema)
        if table is not None:
            root = root / _safe(table)
    return root


def drop_table_stages(database: str, schema: str | None = None, table: str | None = None) -> None:
    """Remove a table's stage (or all of a schema's or database's) with the table, as Snowflake does: a
    table created again under the name starts with an empty stage, not its predecessor's files."""
    shutil.rmtree(table_stage_root(database, schema, table), ignore_errors=True)


def _uses_schema(resolver: Resolver, database: str, schema: str) -> bool:
    """USAGE on the database and the schema; a stage in one the role may not use is named as missing
    (the stage's or table's own wording, not the schema's)."""
    try:
        resolver.schema(database, schema)
    except UserError:
        return False
    return True


def _authorized_stage(resolver: Resolver, database: str, schema: str, name: str, privilege: str) -> Stage:
    if not _uses_schema(resolver, database, schema):
        raise stage_not_found(database, schema, name)
    stage = get_stage(database, schema, name)
    key = privileges.key(database, schema, name)
    held = {p for p in (READ, WRITE) if resolver.held.has(p, "STAGE", key, stage.owner_role)}
    if not held:
        raise stage_not_found(database, schema, name)
    if privilege not in held:
        raise privileges.insufficient("stage", quote(name))
    return stage


def _authorize_table_stage(resolver: Resolver, table: tuple[str, str, str], privilege: str,
                           loading_into: tuple[str, str, str] | None) -> None:
    database, schema, name = table
    if not _uses_schema(resolver, database, schema) or not table_exists(database, schema, name):
        raise _table_not_found(table)
    key = privileges.key(database, schema, name)
    owner = privileges.owner_of("TABLE", key)
    if resolver.held.has("OWNERSHIP", "TABLE", key, owner):
        return
    # Snowflake: files in a table stage are the table owner's, but whoever may load the table may load
    # them into it (and only into it).
    if privilege == READ and loading_into == table and resolver.held.has("INSERT", "TABLE", key, owner):
        return
    if not resolver.sees("TABLE", key, owner):
        raise _table_not_found(table)
    raise privileges.insufficient("table stage", quote(name))


def _table_not_found(table: tuple[str, str, str]) -> UserError:
    return UserError(f"SQL compilation error: Table '{'.'.join(quote(p) for p in table)}' does not exist or not "
                       "authorized.", code=2003, sqlstate="42S02")


def stage_not_found(database: str, schema: str, name: str) -> UserError:
    return UserError(f"SQL compilation error: Stage '{quote(database)}.{quote(schema)}.{quote(name)}' "
                       "does not exist or not authorized.", code=2003, sqlstate="02000")


def visible_stage(session, database: str, schema: str, name: str) -> Stage | None:
    """The named stage when the session's roles may see it (USAGE on its schema and a privilege on it,
    or its ownership); None when it does not exist or they may not."""
    try:
        return _authorized_stage(Resolver(session), database, schema, name, READ)
    except UserError as exc:
        if exc.code == privileges.INSUFFICIENT_PRIVILEGES:
            return Stage.objects.get(schema__database__name=database, schema__name=schema, name=name)
        return None


def named_root(stage: Stage) -> Path:
    return Path(settings.STAGE_DIR) / "named" / str(stage.pk)


def qualify(parts: list[str], session, *, what: str) -> tuple[str, str, str]:
    """(database, schema, name) from a one- to three-part name and the session's current database/schema."""
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        if not session.database:
            raise _no_database(what)
        return session.database, parts[0], parts[1]
    if len(parts) == 1:
        if not session.database or not session.schema:
            raise _no_database(what)
        return session.database, session.schema, parts[0]
    raise compilation_error(f"invalid {what} name '{'.'.join(parts)}'.")


def _no_database(what: str) -> UserError:
    return UserError(f"Cannot resolve the {what} name: this session does not have a current database and "
                       "schema. Run USE DATABASE / USE SCHEMA, or use a fully qualified name (db.schema.name).",
                       code=90105, sqlstate="22000")


def get_stage(database: str, schema: str, name: str) -> Stage:
    stage = Stage.objects.filter(schema__database__name=database, schema__name=schema, name=name).first()
    if stage is None:
        raise stage_not_found(database, schema, name)
    return stage


# -- named stages ----------------------------------------------------------------------------------

def create_stage(session, database: str, schema: str, name: str, *, replace: bool = False,
                 if_not_exists: bool = False, comment: str = "") -> tuple[Stage, bool]:
    """Returns (stage, created); the session's role owns it. CREATE STAGE on the schema is needed, and
    CREATE OR REPLACE, which empties the stage, needs its ownership too."""
    privileges.require_create_in_schema(session, "STAGE", database, schema)
    schema_row = accountdata.get_schema(database, schema)
    existing = Stage.objects.filter(schema=schema_row, name=name).first()
    if existing is not None:
        if if_not_exists:
            return existing, False
        if not replace:
            raise UserError(f"SQL compilation error: Object '{quote(name)}' already exists.",
                              code=2002, sqlstate="42710")
        privileges.require_ownership(session, "STAGE", privileges.key(database, schema, name), display=quote(name))
        _delete(existing)
    stage = Stage.objects.create(schema=schema_row, name=name, owner_role=session.role, comment=comment)
    return stage, True


def drop_stage(session, database: str, schema: str, name: str, *, if_exists: bool = False) -> bool:
    """DROP STAGE: its owner only. False when IF EXISTS and the role sees no such stage; a stage the
    role may not see is one that does not exist, so DROP does not reveal it either."""
    stage = visible_stage(session, database, schema, name)
    if stage is None:
        if if_exists:
            return False
        raise stage_not_found(database, schema, name)
    privileges.require_ownership(session, "STAGE", privileges.key(database, schema, name), display=quote(name))
    _delete(stage)
    return True


def _delete(stage: Stage) -> None:
    root = named_root(stage)
    # A stage created again under the same name starts without the old one's grants, as in Snowflake.
    Grant.objects.filter(object_type="STAGE", object_name=privileges.key(
        stage.schema.database.name, stage.schema.name, stage.name)).delete()
    stage.delete()
    shutil.rmtree(root, ignore_errors=True)


# -- DuckDB files ----------------------------------------------------------------------------------

def open_database(database: str, *, read_only: bool = False, wait: float = 10.0) -> duckdb.DuckDBPyConnection:
    """A connection to one database file. DuckDB lets one process write a file at a time: when another
    process holds it, retry for a few seconds before giving up with a message saying so."""
    path = accountdata.database_file(database)
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise UserError(f"Database '{quote(database)}' is busy: another process is writing it. "
                                  "Try again in a moment.", code=0, sqlstate="57014") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()


def table_exists(database: str, schema: str, table: str) -> bool:
    accountdata.get_schema(database, schema)
    if not accountdata.database_file(database).exists():
        return False
    con = open_database(database, read_only=True)
    try:
        return bool(table_columns(con, schema, table))
    finally:
        con.close()
