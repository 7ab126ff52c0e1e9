"""Loading a file uploaded from the browser into a new or an existing table, as Snowsight's "Load data"
does: the file goes to the user's stage, a new table is created with the columns the file shows
(CREATE TABLE's service, catalog/objects.py, so CREATE TABLE on the schema is checked there), then COPY
INTO's service loads it with ON_ERROR = CONTINUE (INSERT on the table checked there) and reports every
bad row.
Columns are matched by name: a CSV file's header row, a JSON object's keys, a Parquet file's fields.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import duckdb
from sqlglot import exp

from access.session import Session
from catalog import copy_into, copy_options, datatypes, objects, stage_files, stages
from catalog.identifiers import UNQUOTED, QualifiedName
from errors import UserError

FILE_TYPES = {".csv": "CSV", ".jsonl": "JSON", ".ndjson": "JSON", ".json": "JSON", ".parquet": "PARQUET"}
UPLOAD_FOLDER = "studio-uploads"
# What a new table's columns may be; anything DuckDB infers beyond these (UUID, INTERVAL, …) loads as text.
KNOWN_TYPES = ("VARCHAR", "NUMBER", "FLOAT", "BOOLEAN", "DATE", "TIMESTAMP", "TIME", "OBJECT", "ARRAY", "VARIANT")


@dataclass
class Upload:
    """A file the browser sent, already on disk (in the stages' temporary folder)."""

    name: str
    path: Path
    md5: str


@dataclass
class LoadReport:
    table: str  # DB.SCHEMA.TABLE as Snowflake shows it
    table_parts: tuple[str, str, str]
    created: bool
    file: str
    status: str
    rows_parsed: int
    rows_loaded: int
    errors: list[copy_options.RowError] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)  # a new table's (name, type)


def file_type(name: str) -> str:
    kind = FILE_TYPES.get(PurePath(name).suffix.lower())
    if kind is None:
        raise UserError(f"Cannot load '{name}': upload a CSV (.csv, with a header row), JSON lines (.jsonl, "
                          ".ndjson, .json) or Parquet (.parquet) file.", code=2019, sqlstate="0A000")
    return kind


def load(session: Session, upload: Upload, table: tuple[str, str, str], *, create: bool) -> LoadReport:
    """Load `upload` into `table` (database, schema, name); `create` makes it a new table first."""
    kind = file_type(upload.name)
    location = stages.resolve(stages.StageRef("user", [], ""), session, stages.WRITE)
    folder = f"{UPLOAD_FOLDER}/{uuid.uuid4().hex}"
    relative = stages.clean_relative(f"{folder}/{PurePath(upload.name).name}")
    staged = stage_files.publish(location, relative, upload.path, upload.md5)
    target = QualifiedName(*table)
    columns: list[tuple[str, str]] = []
    try:
        if create:
            columns = inferred_columns(staged, kind)
            objects.create(session, objects.Creation("TABLE", target, _column_definitions(columns)))
        try:
            reports = copy_into.copy_from_stage(session, table, stages.StageRef("user", [], folder), _format(kind),
                                                copy_options.CopyOptions(on_error="CONTINUE",
                                                                         match_by_column_name="CASE_INSENSITIVE"))
        except UserError:
            if create:  # a table made for a file that could not be read at all goes again
                objects.drop(session, "TABLE", target, if_exists=True)
            raise
    finally:
        stage_files.remove_files(location, folder)
        for empty in (location.files_dir / folder, location.root / "md5" / folder):
            try:
                empty.rmdir()
            except OSError:
                pass
    (report,) = reports  # a fresh folder, so the one file is always loaded
    return LoadReport(str(target), tuple(table), create, upload.name, report.status, report.rows_parsed,
                      report.rows_loaded, report.errors, columns)


def _format(kind: str) -> copy_options.FileFormat:
    if kind == "CSV":
        return copy_options.FileFormat(type="CSV", parse_header=True, enclosed_by='"')
    return copy_options.FileFormat(type=kind)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def inferred_columns(path: Path, kind: str) -> list[tuple[str, str]]:
    """(column name, Snowflake type) for a new table, from what DuckDB's readers detect in the file.
    Names that are valid unquoted identifiers are upper-cased, as Snowflake stores unquoted names, so
    `SELECT prompt FROM t` finds a CSV's `prompt` column."""
    reader = {"CSV": f"read_csv({_literal(str(path))}, header=true, delim=',', quote='\"')",
              "JSON": f"read_json({_literal(str(path))}, format='newline_delimited')",
              "PARQUET": f"read_parquet({_literal(str(path))})"}[kind]
    con = duckdb.connect(":memory:")
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as exc:
        raise UserError(f"Cannot read the columns of '{path.name}': {str(exc).splitlines()[0]}",
                          code=100069, sqlstate="22000") from exc
    finally:
        con.close()
    columns = []
    for name, duckdb_type, *_ in described:
        snowflake_type = datatypes.from_duckdb(str(duckdb_type))
        if not snowflake_type.startswith(KNOWN_TYPES):
            snowflake_type = "VARCHAR"
        columns.append((name.upper() if UNQUOTED.match(name) else name, snowflake_type))
    return columns


def _column_definitions(columns: list[tuple[str, str]]) -> list[exp.ColumnDef]:
    """A new table's column definitions, as CREATE TABLE's parser reads them, from (name, Snowflake type)."""
    if not columns:
        raise UserError("The file has no columns to create a table from.", code=2019, sqlstate="0A000")
    return [exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=exp.DataType.build(kind, dialect="snowflake"))
            for name, kind in columns]
