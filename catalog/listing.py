"""What a role may see of the catalog: its databases, schemas, tables, views, stages, models and warehouses.

SHOW lists these (sqlengine/show.py gives them Snowflake's columns); the Data page and the wizard list
them too, from here, so none of them shows what SHOW hides. An object is listed when the session's roles
own it or hold some privilege on it, as Snowflake lists it; warehouses as the header's menu and USE
WAREHOUSE list them (access.roles.visible_warehouses).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from access import privileges, roles
from access.session import Session
from catalog import accountdata
from catalog.identifiers import QualifiedName, quote_always
from catalog.models import Database, Schema, SchemaObject, Stage
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from sandbox.information_schema import is_secure, view_definition
from warehouses.models import Warehouse

TABLE, VIEW = "TABLE", "VIEW"


@dataclass(frozen=True)
class DatabaseEntry:
    name: str
    owner: str
    comment: str
    created_on: datetime


@dataclass(frozen=True)
class SchemaEntry:
    database: str
    name: str
    owner: str
    created_on: datetime


@dataclass(frozen=True)
class RelationEntry:
    database: str
    schema: str
    name: str
    kind: str  # TABLE or VIEW
    owner: str
    created_on: datetime | None  # None for an object DuckDB holds that the catalog has no record of
    comment: str
    rows: int | None  # a table's row count; None for a view
    text: str | None  # a view's definition as the role may read it: a secure view's to its owner only
    secure: bool

    @property
    def qualified(self) -> QualifiedName:
        return QualifiedName(self.database, self.schema, self.name)


@dataclass(frozen=True)
class StageEntry:
    database: str
    schema: str
    name: str
    owner: str
    comment: str
    created_on: datetime


@dataclass(frozen=True)
class ModelEntry:
    database: str
    schema: str
    name: str
    owner: str
    base_model: str
    created_on: datetime
    deployments: tuple[tuple[str, str], ...]  # (inference server, the model's state there)


@dataclass(frozen=True)
class WarehouseEntry:
    name: str
    size: str
    running: int  # jobs in progress
    queued: int  # jobs pending
    created_on: datetime
    owner: str
    comment: str
    devices: str
    concurrency: int


def databases(session: Session) -> list[DatabaseEntry]:
    visibility = privileges.Visibility(session)
    return [DatabaseEntry(d.name, d.owner_role, d.comment, d.created_on) for d in Database.objects.order_by("name")
            if visibility.sees("DATABASE", privileges.key(d.name), d.owner_role)]


def schemas(session: Session, database: str | None = None) -> list[SchemaEntry]:
    """Every database's schemas, or one database's."""
    visibility = privileges.Visibility(session)
    found = Schema.objects.select_related("database").order_by("database__name", "name")
    if database:
        found = found.filter(database__name=database)
    return [SchemaEntry(s.database.name, s.name, s.owner_role, s.created_on) for s in found
            if visibility.sees("SCHEMA", privileges.key(s.database.name, s.name), s.owner_role)]


def relations(session: Session, kinds: tuple[str, ...] = (TABLE, VIEW), database: str | None = None,
              schema: str | None = None) -> list[RelationEntry]:
    """The tables and views (or only `kinds`) DuckDB holds, in every schema or in one database or
    schema, by database, schema and name. An object DuckDB holds but the catalog has no record of
    belongs to its schema's owner."""
    visibility = privileges.Visibility(session)
    records = {(o.schema.database.name, o.schema.name, o.name): o
               for o in SchemaObject.objects.select_related("schema__database")}
    schema_owners = {(s.database.name, s.name): s.owner_role for s in Schema.objects.select_related("database")}
    found = []
    with accountdata.connect(None, None) as con:
        listed = []
        if TABLE in kinds:
            listed += [(TABLE, *row) for row in con.execute(
                "SELECT database_name, schema_name, table_name, NULL FROM duckdb_tables() WHERE NOT temporary"
            ).fetchall()]
        if VIEW in kinds:
            listed += [(VIEW, *row) for row in con.execute(
                "SELECT database_name, schema_name, view_name, sql FROM duckdb_views() "
                "WHERE NOT internal AND NOT temporary").fetchall()]
        for kind, db, sch, name, sql in listed:
            if (db, sch) not in schema_owners or (database and db != database) or (schema and sch != schema):
                continue
            record = records.get((db, sch, name))
            owner = record.owner_role if record else schema_owners[(db, sch)]
            if not visibility.sees(kind, privileges.key(db, sch, name), owner):
                continue
            text = record.text if record and record.text else sql
            rows = (con.execute(f"SELECT count(*) FROM {quote_always(db, sch, name)}").fetchone()[0]
                    if kind == TABLE else None)
            found.append(RelationEntry(
                db, sch, name, kind, owner, record.created_on if record else None, record.comment if record else "",
                rows, view_definition(text, owner, visibility) if kind == VIEW else text, is_secure(text)))
    return sorted(found, key=lambda r: (r.database, r.schema, r.name))


def stages(session: Session, database: str | None = None, schema: str | None = None) -> list[StageEntry]:
    """The named stages the role owns or holds a privilege on, in every schema or in one database or schema."""
    visibility = privileges.Visibility(session)
    found = Stage.objects.select_related("schema__database")
    if database:
        found = found.filter(schema__database__name=database)
    if schema:
        found = found.filter(schema__name=schema)
    return [StageEntry(s.schema.database.name, s.schema.name, s.name, s.owner_role, s.comment, s.created_on)
            for s in found
            if visibility.sees("STAGE", privileges.key(s.schema.database.name, s.schema.name, s.name), s.owner_role)]


def models(session: Session, database: str | None = None, schema: str | None = None) -> list[ModelEntry]:
    visibility = privileges.Visibility(session)
    found = FineTunedModel.objects.select_related("schema__database").prefetch_related("deployments__server")
    if database:
        found = found.filter(schema__database__name=database)
    if schema:
        found = found.filter(schema__name=schema)
    return [ModelEntry(m.schema.database.name, m.schema.name, m.name, m.owner_role, m.base_model, m.created_on,
                       tuple((d.server.name, d.label) for d in m.deployments.all()))
            for m in found
            if visibility.sees("MODEL", privileges.key(m.schema.database.name, m.schema.name, m.name), m.owner_role)]


def warehouses(session: Session) -> list[WarehouseEntry]:
    found = []
    for w in Warehouse.objects.filter(name__in=roles.visible_warehouses(session)).order_by("name"):
        jobs = FineTuneJob.objects.filter(warehouse=w.name)
        found.append(WarehouseEntry(
            w.name, w.size, jobs.filter(status=FineTuneJob.Status.IN_PROGRESS).count(),
            jobs.filter(status=FineTuneJob.Status.PENDING).count(), w.created_on, privileges.WAREHOUSE_OWNER,
            getattr(w, "comment", ""), w.devices, w.concurrency))
    return found
