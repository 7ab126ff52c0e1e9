"""Internal stages: the user stage @~, table stages @%table and named stages, as folders on local disk.

A stage is a folder of files under STAGE_DIR:

    user/<user name>/files/…                the user stage @~ of each user
    table/<database>/<schema>/<table>/files/… the stage @%table of each table
    named/<stage id>/files/…                a named stage (by id, so a re-created stage starts empty)

beside each `files/` folder a `md5/` folder caches each file's MD5 (LIST shows it, COPY's load metadata
keys on it) so a 1 GB file is hashed once, while it is written. Files arrive whole: writers stream into
STAGE_DIR/.incoming and rename into place, so LIST and COPY never see half a file.

Who may use a stage is decided here, in resolve(), for every entry point (LIST, GET, REMOVE, PUT, COPY's
source, the upload endpoint, the Data page), with Snowflake's rules:
- a named stage: USAGE on its database and schema, then READ (LIST, GET, DESCRIBE, COPY INTO <table>) or
  WRITE (PUT, upload, REMOVE); its owner holds both. A role holding neither is told the stage does not
  exist, as Snowflake tells it;
- a table stage @db.s.%t: the table's owner only, except that COPY INTO t FROM @%t needs only INSERT on t;
- the user stage @~: the session's own user, whatever the role; no name reaches another user's.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import duckdb
from django.conf import settings

from access import privileges
from access.models import Grant
from catalog import accountdata
from catalog.identifiers import quote, split_parts
from catalog.models import Stage
from errors import UserError, compilation_error
from sandbox.resolver import Resolver

CHUNK = 1024 * 1024
# The privileges on a stage (GRANT READ, WRITE ON STAGE …): what an operation needs, passed to resolve().
READ, WRITE = "READ", "WRITE"
# What PUT reports as source_compression, by file extension; AUTO_COMPRESS leaves these alone.
COMPRESSIONS = {".gz": "GZIP", ".bz2": "BZ2", ".zst": "ZSTD", ".br": "BROTLI", ".deflate": "DEFLATE",
                ".parquet": "PARQUET"}


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


# -- files -----------------------------------------------------------------------------------------

@dataclass
class StagedFile:
    relative: str  # path inside the stage
    path: Path
    size: int
    mtime: float


def list_files(location: StageLocation, path: str = "", pattern: str | None = None) -> list[StagedFile]:
    """Files whose stage-relative path starts with `path` (a string prefix, as in Snowflake) and, when a
    PATTERN is given, whose path matches it in full."""
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise UserError(f"Invalid PATTERN '{pattern}': {exc}.", code=1003, sqlstate="22023") from exc
    files_dir = location.files_dir
    if not files_dir.is_dir():
        return []
    prefix = path.lstrip("/")
    found = []
    for dirpath, _dirnames, filenames in os.walk(files_dir):
        for filename in filenames:
            full = Path(dirpath) / filename
            relative = full.relative_to(files_dir).as_posix()
            if not relative.startswith(prefix):
                continue
            if regex is not None and not regex.fullmatch(location.prefix + relative) and not regex.fullmatch(relative):
                continue
            stat = full.stat()
            found.append(StagedFile(relative, full, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda f: f.relative)


def md5_of(location: StageLocation, staged: StagedFile) -> str:
    """The cached MD5 of a staged file, computed (and cached) when the cache is missing or stale."""
    cache = location.md5_path(staged.relative)
    stat = staged.path.stat()
    stamp = f"{stat.st_size} {stat.st_mtime_ns}"
    with contextlib.suppress(OSError):
        cached_stamp, _, digest = cache.read_text().rpartition(" ")
        if cached_stamp == stamp and len(digest) == 32:
            return digest
    digest = hashlib.md5()
    with open(staged.path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    _write_md5(cache, staged.path, digest.hexdigest())
    return digest.hexdigest()


def _write_md5(cache: Path, path: Path, digest: str) -> None:
    stat = path.stat()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(f"{stat.st_size} {stat.st_mtime_ns} {digest}")


def last_modified(staged: StagedFile) -> str:
    return formatdate(staged.mtime, usegmt=True)


def remove_files(location: StageLocation, path: str = "", pattern: str | None = None) -> list[StagedFile]:
    removed = list_files(location, path, pattern)
    for staged in removed:
        staged.path.unlink(missing_ok=True)
        location.md5_path(staged.relative).unlink(missing_ok=True)
    return removed


def download_files(location: StageLocation, path: str, pattern: str | None, folder: Path) -> list[tuple[StagedFile, Path]]:
    """GET: copy the matching staged files into a local folder (made if missing), each under its own
    name without the stage's folders, as Snowflake's clients write them."""
    found = list_files(location, path, pattern)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for staged in found:
        target = folder / PurePosixPath(staged.relative).name
        temporary = folder / f".{target.name}.{uuid.uuid4().hex}.part"
        try:
            shutil.copyfile(staged.path, temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        written.append((staged, target))
    return written


@contextlib.contextmanager
def incoming_file() -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file on the stages' own file system, so publishing it is an atomic rename; removed
    unless it was published."""
    incoming = Path(settings.STAGE_DIR) / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / uuid.uuid4().hex
    try:
        with open(path, "wb") as handle:
            yield path, handle
    finally:
        path.unlink(missing_ok=True)


def publish(location: StageLocation, relative: str, temporary: Path, digest: str) -> Path:
    target = location.file_path(relative)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, target)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UserError(f"Cannot store '{relative}' in {location.display}: a file there already has the name of "
                          "one of its folders. Choose another name.", code=1003, sqlstate="22023") from exc
    except IsADirectoryError as exc:
        raise UserError(f"Cannot store '{relative}' in {location.display}: it is the name of a folder of staged "
                          "files. Choose another name.", code=1003, sqlstate="22023") from exc
    _write_md5(location.md5_path(relative), target, digest)
    return target


def store_stream(location: StageLocation, relative: str, chunks) -> tuple[int, str]:
    """Write an iterable of byte chunks as a staged file; returns (size, md5). Memory stays at one chunk."""
    digest, size = hashlib.md5(), 0
    with incoming_file() as (temporary, handle):
        for chunk in chunks:
            handle.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        handle.close()
        publish(location, relative, temporary, digest.hexdigest())
    return size, digest.hexdigest()


def exists(location: StageLocation, relative: str) -> bool:
    return location.file_path(relative).is_file()


@dataclass
class PutOutcome:
    source: str
    target: str
    source_size: int
    target_size: int
    source_compression: str
    target_compression: str
    status: str
    message: str = ""


def put_file(location: StageLocation, source: Path, folder: str, *, overwrite: bool, auto_compress: bool) -> PutOutcome:
    """PUT one local file: gzip it unless it is compressed already (AUTO_COMPRESS), skip an existing file
    unless OVERWRITE."""
    source_compression = COMPRESSIONS.get(source.suffix.lower(), "NONE")
    compress = auto_compress and source_compression == "NONE"
    target_name = source.name + (".gz" if compress else "")
    relative = f"{folder.strip('/')}/{target_name}" if folder.strip("/") else target_name
    size = source.stat().st_size
    target_compression = "GZIP" if compress else source_compression
    if exists(location, relative) and not overwrite:
        existing = location.file_path(relative).stat().st_size
        return PutOutcome(source.name, target_name, size, existing, source_compression, target_compression,
                          "SKIPPED", "File already exists in the stage; use OVERWRITE = TRUE to replace it.")
    digest = hashlib.md5()
    with incoming_file() as (temporary, handle), open(source, "rb") as reader:
        if compress:
            # compresslevel 1: about 4x faster than the default 9 for ~10% larger files; COPY reads either.
            hashing = _HashingWriter(handle, digest)
            with gzip.GzipFile(filename=source.name, mode="wb", fileobj=hashing, compresslevel=1, mtime=0) as gz:
                while chunk := reader.read(CHUNK):
                    gz.write(chunk)
        else:
            while chunk := reader.read(CHUNK):
                handle.write(chunk)
                digest.update(chunk)
        handle.close()
        target = publish(location, relative, temporary, digest.hexdigest())
    return PutOutcome(source.name, target_name, size, target.stat().st_size, source_compression,
                      target_compression, "UPLOADED")


class _HashingWriter:
    def __init__(self, handle: BinaryIO, digest) -> None:
        self.handle, self.digest = handle, digest

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


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
