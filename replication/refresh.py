"""ALTER DATABASE d REFRESH: a secondary database made equal to its primary (replication/snapshot.py
on the primary's side), incrementally and atomically.

Incrementally: a table whose fingerprint and a model whose adapter version the last refresh already
copied is not transferred again; the new database file takes such a table from the current one.
Atomically: everything is first downloaded (each file checked against its size and SHA-256) and built
beside the replica: a new DuckDB file, new adapter directories under names no model uses yet. Only then,
in one metadata transaction, do the catalog's rows change and the new file replace the old one, so a
primary that stops answering, a file that does not match its checksum or any other failure leaves the
replica exactly as it was, and the error says why.

Grants are not copied, as in Snowflake: the secondary's objects are owned by the role that owns the
secondary database, and its own grants on them (by name) survive each refresh.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import duckdb
import sqlglot
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from sqlglot import exp

from catalog import accountdata
from catalog.identifiers import quote, quote_always
from catalog.models import BaseModel, Database, Schema, SchemaObject
from errors import UserError
from models_registry import adapter_files, registry
from models_registry.models import Deployment, FineTunedModel
from organization import accounts, peers
from organization.names import parse
from replication import snapshot
from replication.models import ReplicatedDatabase


@dataclass
class Outcome:
    database: str
    primary: str
    tables_copied: int = 0
    tables_unchanged: int = 0
    models_copied: int = 0
    models_unchanged: int = 0
    bytes_transferred: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"Database {quote(self.database)} refreshed from {self.primary}: {self.tables_copied} table(s) copied, "
                f"{self.tables_unchanged} unchanged; {self.models_copied} model(s) copied, {self.models_unchanged} "
                f"unchanged; {_size(self.bytes_transferred)} transferred.")
        return " ".join([text, *self.notes])


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _key(schema: str, name: str) -> str:
    return f"{schema}.{name}"


class RefreshRunning(UserError):
    """Another process is refreshing the same database right now."""


def staging_root() -> Path:
    """Where refreshes download, on the model store's file system: adapter directories move from here
    into the adapters directory with one rename."""
    return settings.MODEL_STORE / "replication"


@contextlib.contextmanager
def _exclusive(database: Database) -> Iterator[None]:
    """One refresh of a database at a time, across processes (a scheduled one in a worker, one asked for
    in SQL): the second is told, not queued behind the first."""
    locks = settings.DATA_DIR / "replication" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{accountdata.database_file(database.name).stem}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefreshRunning(f"Database {quote(database.name)} is being refreshed already; try again when that "
                                 "refresh has finished (SHOW REPLICATION DATABASES shows when it started).",
                                 code=3036, sqlstate="55006") from None
        yield


def refresh(replication: ReplicatedDatabase) -> Outcome:
    database = replication.database
    with _exclusive(database):
        ReplicatedDatabase.objects.filter(pk=replication.pk).update(last_refresh_started_on=timezone.now())
        try:
            return _refresh(replication, accounts.registered(parse(replication.primary_account)))
        except UserError as exc:
            ReplicatedDatabase.objects.filter(pk=replication.pk).update(last_refresh_error=exc.message)
            raise UserError(f"Refresh of database {quote(database.name)} from {replication.primary_locator} failed; "
                            f"the replica is unchanged. {exc.message}", code=exc.code, sqlstate=exc.sqlstate) from None


def _api_path(replication: ReplicatedDatabase) -> str:
    return f"replication/databases/{url_quote(replication.primary_database, safe='')}"


def _refresh(replication: ReplicatedDatabase, primary) -> Outcome:
    manifest = peers.get_json(primary, _api_path(replication))
    _check_manifest(primary, manifest)
    if manifest.get("database") != replication.primary_database:
        raise UserError(f"Account {primary.locator} answered for another database ({manifest.get('database')!r}).",
                        code=390102, sqlstate="08004")
    outcome = Outcome(replication.database.name, replication.primary_locator)
    staging_root().mkdir(parents=True, exist_ok=True)
    _require_room(replication, manifest)
    staging = Path(tempfile.mkdtemp(dir=staging_root(), prefix=".refresh-"))
    moved: list[Path] = []
    try:
        tables = _download_tables(replication, primary, manifest, staging, outcome)
        new_file = _build_file(replication.database, manifest, tables, outcome)
        try:
            adapters, moved = _download_models(replication, primary, manifest, staging, outcome)
            superseded = _commit(replication, manifest, tables, adapters, new_file)
        finally:
            for leftover in (new_file, new_file.with_name(new_file.name + ".wal")):
                leftover.unlink(missing_ok=True)
        moved = []  # committed: the models use them now
        for old in superseded:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    outcome.notes += _missing_base_models(manifest)
    return outcome


def _check_manifest(primary, manifest: dict[str, Any]) -> None:
    """Every object in a schema the manifest lists, by a name this account could give it, each once, with
    every field the refresh reads of the type it reads it as: a malformed answer is refused here, never
    an internal error half-way (nor one that stops the scheduled refreshes of other replicas)."""
    def inconsistent(why: str) -> UserError:
        return UserError(f"Account {primary.locator} answered a manifest this account cannot use ({why}); nothing "
                         "was copied.", code=390102, sqlstate="08004")

    if not isinstance(manifest, dict) or not isinstance(manifest.get("comment", ""), str):
        raise inconsistent("it is not a manifest")
    schemas = manifest.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(n, str) and n for n in schemas):
        raise inconsistent("its schemas are not a list of names")
    reserved = [n for n in schemas if n.upper() in accountdata.RESERVED_SCHEMAS]
    if reserved:
        raise inconsistent(f"schema {reserved[0]} is reserved")
    for kind in ("tables", "views", "models"):
        seen = set()
        if not isinstance(manifest.get(kind, []), list):
            raise inconsistent(f"its {kind} are not a list")
        for entry in manifest.get(kind, []):
            if not isinstance(entry, dict) or entry.get("schema") not in schemas or \
                    not isinstance(entry.get("name"), str) or not entry["name"]:
                raise inconsistent(f"one of its {kind} is not in a schema it lists")
            if (entry["schema"], entry["name"]) in seen:
                raise inconsistent(f"{kind[:-1]} {entry['schema']}.{entry['name']} is listed twice")
            seen.add((entry["schema"], entry["name"]))
    for kind in ("tables", "views", "models"):
        for entry in manifest.get(kind, []):
            if (why := _malformed(kind, entry)) is not None:
                raise inconsistent(f"{kind[:-1]} {entry['schema']}.{entry['name']} {why}")


def _is_file(f: Any) -> bool:
    return isinstance(f, dict) and type(f.get("size")) is int and f["size"] >= 0 and isinstance(f.get("sha256"), str)


def _malformed(kind: str, entry: dict[str, Any]) -> str | None:
    """What of an entry of the manifest is not of the type the refresh reads it as, or None."""
    if not isinstance(entry.get("column_types") or {}, dict) or not all(
            isinstance(entry.get(f, ""), str) for f in ("comment", "text")):
        return "is described with values that are not text"
    fingerprint = entry.get("fingerprint")
    if kind == "tables" and not (isinstance(fingerprint, str) and fingerprint.isascii() and fingerprint.isalnum()
                                 and _is_file(entry.get("file"))):
        return "has no fingerprint and file of its export"
    files = entry.get("files")
    listed = isinstance(files, list) and files and all(_is_file(f) and isinstance(f.get("path"), str) for f in files)
    if kind == "models" and not (listed and isinstance(entry.get("base_model"), str)
                                 and isinstance(entry.get("metrics") or {}, dict)):
        return "has no base model, metrics and list of adapter files"
    return None


def _require_room(replication: ReplicatedDatabase, manifest: dict[str, Any]) -> None:
    """What the refresh would transfer must fit on the disk it is written to: a download stops at the size
    the manifest gave, so a primary cannot fill this deployment's disk by announcing a huge file."""
    state = replication.state or {}
    held_tables, held_models = state.get("tables", {}), state.get("models", {})
    needed = sum(t["file"]["size"] for t in manifest.get("tables", [])
                 if held_tables.get(_key(t["schema"], t["name"])) != t["fingerprint"])
    needed += sum(f["size"] for m in manifest.get("models", []) for f in m["files"]
                  if held_models.get(_key(m["schema"], m["name"])) != adapter_files.version(m["files"]))
    free = shutil.disk_usage(staging_root()).free
    if needed > free:
        raise UserError(f"The refresh would transfer {_size(needed)}, more than the {_size(free)} free on this "
                        "deployment's disk; nothing was copied.", code=3037, sqlstate="53100")


def _download_tables(replication: ReplicatedDatabase, primary, manifest: dict[str, Any], staging: Path,
                     outcome: Outcome) -> dict[str, Path | None]:
    """Each table's source for the new file: a downloaded export, or None to take it from the current one."""
    held = (replication.state or {}).get("tables", {})
    current = _current_tables(replication.database)
    sources: dict[str, Path | None] = {}
    for table in manifest.get("tables", []):
        key = _key(table["schema"], table["name"])
        if held.get(key) == table["fingerprint"] and key in current:
            sources[key] = None
            outcome.tables_unchanged += 1
            continue
        path = (f"{_api_path(replication)}/tables/{url_quote(table['schema'], safe='')}/"
                f"{url_quote(table['name'], safe='')}/{url_quote(table['fingerprint'], safe='')}")
        target = staging / "tables" / f"{snapshot.object_id(table['schema'], table['name'])}.parquet"
        peers.download(primary, path, target, sha256=table["file"]["sha256"], size=int(table["file"]["size"]))
        sources[key] = target
        outcome.tables_copied += 1
        outcome.bytes_transferred += int(table["file"]["size"])
    return sources


def _current_tables(database: Database) -> set[str]:
    if not accountdata.database_file(database.name).exists():
        return set()
    con = duckdb.connect(":memory:")
    try:
        accountdata.attach(con, database.name, read_only=True)
        return {_key(s, t) for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ? "
            "AND table_type = 'BASE TABLE'", [database.name]).fetchall()}
    finally:
        con.close()


def _build_file(database: Database, manifest: dict[str, Any], sources: dict[str, Path | None],
                outcome: Outcome) -> Path:
    """The replica's next DuckDB file, beside the current one (os.replace needs the same file system)."""
    settings.DUCKDB_DIR.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=settings.DUCKDB_DIR, prefix=".refresh-", suffix=".duckdb")
    os.close(fd)
    path = Path(name)
    path.unlink()  # DuckDB makes the file itself
    con = duckdb.connect(str(path))
    try:
        if any(source is None for source in sources.values()):
            accountdata.attach(con, database.name, read_only=True)
        for schema in manifest.get("schemas", []):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_always(schema)}")
        for table in manifest.get("tables", []):
            key, target = _key(table["schema"], table["name"]), quote_always(table["schema"], table["name"])
            source = sources[key]
            if source is None:
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM "
                            f"{quote_always(database.name, table['schema'], table['name'])}")
            else:
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM read_parquet(?)", [str(source)])
        if any(source is None for source in sources.values()):
            con.execute(f"DETACH {quote_always(database.name)}")
        # The views' text comes from another deployment: it runs with no file, network or extension
        # access and nothing attached, and only as the one CREATE VIEW it claims to be.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        for view in manifest.get("views", []):
            why = _not_a_view(view)
            try:
                if why is None:
                    con.execute(view["sql"])
            except duckdb.Error as exc:
                # A view over another database reads tables this account does not have.
                why = str(exc).splitlines()[0]
            if why is not None:
                outcome.notes.append(f"View {quote(view['schema'])}.{quote(view['name'])} was not replicated: {why}.")
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        con.close()
        path.unlink(missing_ok=True)
        raise UserError(f"Could not build the refreshed copy of database {quote(database.name)}: {exc}",
                        code=3037, sqlstate="XX000") from None
    con.close()
    return path


def _not_a_view(view: dict[str, Any]) -> str | None:
    """Why the manifest's text for a view is not one CREATE VIEW of that view over a SELECT, or None."""
    try:
        statements = sqlglot.parse(str(view.get("sql", "")), read="duckdb")
    except sqlglot.errors.ParseError:
        return "its definition could not be read"
    if len(statements) != 1 or not isinstance(statements[0], exp.Create) or statements[0].kind != "VIEW":
        return "its definition is not a single CREATE VIEW"
    created = statements[0]
    target = created.this if isinstance(created.this, exp.Table) else created.this.find(exp.Table)
    if target is None or (target.db, target.name) != (view["schema"], view["name"]) or target.catalog:
        return "its definition creates another object"
    if not isinstance(created.expression, exp.Query):
        return "its definition is not a query"
    return None


def _download_models(replication: ReplicatedDatabase, primary, manifest: dict[str, Any], staging: Path,
                     outcome: Outcome) -> tuple[dict[str, Path], list[Path]]:
    """Each model's adapter directory, its version downloaded when the replica lacks it; the directories
    moved into the adapters directory (under names no model uses yet) are the second answer."""
    database = replication.database
    held = {_key(m.schema.name, m.name): m for m in
            FineTunedModel.objects.filter(schema__database=database).select_related("schema")}
    versions = (replication.state or {}).get("models", {})
    adapters: dict[str, Path] = {}
    downloaded: list[tuple[Path, Path]] = []
    for model in manifest.get("models", []):
        key, version = _key(model["schema"], model["name"]), adapter_files.version(model["files"])
        existing = held.get(key)
        if existing is not None and versions.get(key) == version and existing.adapter_dir.is_dir():
            adapters[key] = existing.adapter_dir
            outcome.models_unchanged += 1
            continue
        partial = staging / "models" / snapshot.object_id(model["schema"], model["name"])
        base = (f"{_api_path(replication)}/models/{url_quote(model['schema'], safe='')}/"
                f"{url_quote(model['name'], safe='')}/files/")
        adapter_files.download(primary, base, model["files"], partial)
        qualified = f"{quote(database.name)}.{quote(model['schema'])}.{quote(model['name'])}"
        adapter_files.name_model(partial, qualified, model["base_model"],
                                 {"replicated_from": {"account": primary.locator,
                                                      "database": replication.primary_database}})
        model_id = snapshot.object_id(model["schema"], model["name"])
        target = registry.adapters_dir() / f"replica-{database.pk}-{model_id}-{version}"
        downloaded.append((partial, target))
        adapters[key] = target
        outcome.models_copied += 1
        outcome.bytes_transferred += sum(int(f["size"]) for f in model["files"])
    moved = []
    registry.adapters_dir().mkdir(parents=True, exist_ok=True)
    for partial, target in downloaded:
        shutil.rmtree(target, ignore_errors=True)  # a copy an earlier refresh left when it failed
        partial.rename(target)
        moved.append(target)
    return adapters, moved


def _commit(replication: ReplicatedDatabase, manifest: dict[str, Any], tables: dict[str, Path | None],
            adapters: dict[str, Path], new_file: Path) -> list[Path]:
    """The catalog as the manifest describes it, and the new file in place of the old, together; the
    adapter directories no model uses any more are the answer, to remove once committed."""
    database = replication.database
    owner = database.owner_role
    with transaction.atomic():
        schemas = {}
        for name in manifest.get("schemas", []):
            schemas[name], _ = Schema.objects.get_or_create(database=database, name=name, defaults={"owner_role": owner})
        superseded = [Path(p) for p in FineTunedModel.objects.filter(schema__database=database)
                      .exclude(schema__name__in=list(schemas)).values_list("adapter_path", flat=True) if p]
        Schema.objects.filter(database=database).exclude(name__in=list(schemas)).delete()
        listed = set()
        for kind, entries in ((SchemaObject.Kind.TABLE, manifest.get("tables", [])),
                              (SchemaObject.Kind.VIEW, manifest.get("views", []))):
            for entry in entries:
                listed.add((entry["schema"], entry["name"]))
                SchemaObject.objects.update_or_create(
                    schema=schemas[entry["schema"]], name=entry["name"],
                    defaults={"kind": kind, "owner_role": owner, "comment": entry.get("comment", ""),
                              "text": entry.get("text", ""), "column_types": entry.get("column_types") or {}})
        for row in SchemaObject.objects.filter(schema__database=database).select_related("schema"):
            if (row.schema.name, row.name) not in listed:
                row.delete()
        models_listed = set()
        for entry in manifest.get("models", []):
            key = _key(entry["schema"], entry["name"])
            models_listed.add(key)
            row = FineTunedModel.objects.filter(schema=schemas[entry["schema"]], name=entry["name"]).first()
            fields = {"base_model": entry["base_model"], "owner_role": owner, "adapter_path": str(adapters[key]),
                      "metrics": {**(entry.get("metrics") or {}), "replicated_from": replication.primary_locator}}
            if row is None:
                FineTunedModel.objects.create(schema=schemas[entry["schema"]], name=entry["name"], **fields)
                continue
            if row.adapter_path != fields["adapter_path"]:
                superseded.append(Path(row.adapter_path))
                # A new version of the adapter must be loaded again wherever the old one was.
                Deployment.objects.filter(model=row).delete()
            FineTunedModel.objects.filter(pk=row.pk).update(**fields)
        for row in FineTunedModel.objects.filter(schema__database=database).select_related("schema"):
            if _key(row.schema.name, row.name) not in models_listed:
                superseded.append(Path(row.adapter_path))
                row.delete()
        Database.objects.filter(pk=database.pk).update(comment=manifest.get("comment", ""))
        ReplicatedDatabase.objects.filter(pk=replication.pk).update(
            state={"tables": {_key(t["schema"], t["name"]): t["fingerprint"] for t in manifest.get("tables", [])},
                   "models": {_key(m["schema"], m["name"]): adapter_files.version(m["files"])
                              for m in manifest.get("models", [])},
                   "failover_allowed": manifest.get("failover_allowed") is True},
            last_refreshed_on=timezone.now(), last_refresh_error="")
        # Last, so that a failure before it rolls the catalog back with the old file still in place.
        _install(new_file, database)
    return [p for p in superseded if p.name.startswith("replica-") and p not in adapters.values()]


def _install(new_file: Path, database: Database) -> None:
    path = accountdata.database_file(database.name)
    # A write-ahead log left beside the old file would be replayed into the new one.
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    os.replace(new_file, path)


def _missing_base_models(manifest: dict[str, Any]) -> list[str]:
    needed = sorted({m["base_model"] for m in manifest.get("models", [])})
    installed = {b.name for b in BaseModel.objects.filter(name__in=needed) if b.is_installed}
    return [f"Base model '{name}' is not installed in this account, so the replicated models fine-tuned from it "
            f"refuse COMPLETE until an administrator installs it (python manage.py basemodels install {name})."
            for name in needed if name not in installed]


def refresh_due() -> list[str]:
    """Refresh each secondary whose REPLICATION_SCHEDULE says it is due (the workers' maintenance step);
    one line per refresh, failures included (a failed refresh waits its interval before the next try)."""
    now, done = timezone.now(), []
    for replication in ReplicatedDatabase.objects.filter(is_primary=False, refresh_interval_minutes__isnull=False) \
            .select_related("database"):
        last = replication.last_refresh_started_on
        if last is not None and (now - last).total_seconds() < replication.refresh_interval_minutes * 60:
            continue
        try:
            done.append(refresh(replication).summary())
        except RefreshRunning:
            continue  # another worker is at it
        except UserError as exc:
            done.append(exc.message)
    return done
