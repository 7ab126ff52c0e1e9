"""COPY INTO <table> FROM @stage: loading staged CSV, JSON-lines and Parquet files into a DuckDB table.

The rules are Snowflake's: CSV fields map to the table's columns by position (or by header name with
MATCH_BY_COLUMN_NAME and PARSE_HEADER), JSON and Parquet map by name; ON_ERROR decides what a bad row
does (ABORT_STATEMENT: nothing is loaded, in one transaction; CONTINUE: the row is skipped and counted;
SKIP_FILE: the whole file is skipped); each file gets a row of the result; files already loaded into the
table (same name and MD5) are skipped unless FORCE = TRUE.

DuckDB does the parsing: read_csv with `store_rejects` gives every bad row with its line, column and
message; JSON lines are read one line per row and checked with json_valid and TRY_CAST.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from dataclasses import dataclass

import duckdb

from access import privileges
from access.session import Session
from catalog import stage_files, stages
from catalog.accountdata import duckdb_message
from catalog.copy_options import CopyOptions, FileFormat, FileReport, RowError
from catalog.identifiers import quote, quote_always
from catalog.models import LoadedFile
from errors import UserError

ON_ERROR_HINT = ("If you would like to continue loading when an error is encountered, use other values such as "
                 "'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option.")
# Prompt/completion rows can be long; DuckDB's default maximum line is 2 MB.
MAX_LINE_SIZE = 64 * 1024 * 1024
NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|"
                     r"REAL|DECIMAL.*|NUMERIC.*)$")


@dataclass
class Target:
    database: str
    schema: str
    table: str
    columns: list[tuple[str, str]]  # (name, DuckDB type) of the columns the files fill, in order

    @property
    def sql(self) -> str:
        return quote_always(self.schema, self.table)

    def column_label(self, name: str) -> str:
        position = [c for c, _ in self.columns].index(name) + 1 if name in [c for c, _ in self.columns] else 0
        return f'"{self.table}"["{name}":{position}]'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def copy_from_stage(session: Session, table: tuple[str, str, str], ref: stages.StageRef, fmt: FileFormat,
                    options: CopyOptions) -> list[FileReport]:
    """COPY INTO's service, for the statement and the Data page's upload alike: USAGE on the schema,
    INSERT on the table and READ on the source stage, then the load; a report per file with every bad row."""
    database, schema, name = table
    roles = privileges.session_roles(session)
    privileges.require_schema_usage(session, database, schema, roles=roles)
    privileges.require(session, "INSERT", "TABLE", privileges.key(database, schema, name), roles=roles)
    privileges.require_writable(database, "COPY INTO")
    location = stages.resolve(ref, session, stages.READ, loading_into=(database, schema, name))
    return _load_files(database, schema, name, location, ref.path, fmt, options)


def _load_files(database: str, schema: str, table: str, location: stages.StageLocation, path: str,
                fmt: FileFormat, options: CopyOptions) -> list[FileReport]:
    """Load the staged files into the table; one report per file (none when every file was loaded before),
    each with all of its bad rows."""
    staged = _select_files(location, path, options)
    digests = {f.relative: stage_files.md5_of(location, f) for f in staged}
    if not options.force:
        loaded = set(LoadedFile.objects.filter(database=database, schema=schema, table=table)
                     .values_list("file", "md5"))
        staged = [f for f in staged if (location.prefix + f.relative, digests[f.relative]) not in loaded]
    if not staged:
        return []

    con = stages.open_database(database)
    try:
        target = _target(con, database, schema, table, options.columns)
        if options.on_error == "ABORT_STATEMENT":
            reports = _load_all_or_nothing(con, target, location, staged, fmt, options)
        else:
            reports = [_load_on_its_own(con, target, location, f, fmt, options) for f in staged]
    finally:
        con.close()
    LoadedFile.objects.bulk_create([
        LoadedFile(database=database, schema=schema, table=table, file=r.file,
                   md5=digests[r.file[len(location.prefix):]], rows_loaded=r.rows_loaded)
        for r in reports if r.status in ("LOADED", "PARTIALLY_LOADED")
    ])
    return reports


def _select_files(location: stages.StageLocation, path: str, options: CopyOptions) -> list[stage_files.StagedFile]:
    if options.files is not None:
        folder = path if not path or path.endswith("/") else path + "/"
        available = {f.relative: f for f in stage_files.list_files(location, path)}
        chosen = []
        for name in options.files:
            relative = stages.clean_relative(folder + name if folder and not name.startswith(folder) else name)
            if relative not in available:
                raise UserError(f"Remote file '{location.display}/{relative}' was not found. Check the name with "
                                  f"LIST {location.display}.", code=253006, sqlstate="22000")
            chosen.append(available[relative])
        return chosen
    return stage_files.list_files(location, path, options.pattern)


def _target(con, database: str, schema: str, table: str, names: list[str] | None) -> Target:
    columns = stages.table_columns(con, schema, table)
    if not columns:
        raise UserError(f"SQL compilation error: Table '{quote(database)}.{quote(schema)}.{quote(table)}' does "
                          "not exist or not authorized.", code=2003, sqlstate="42S02")
    if names:
        chosen = []
        for name in names:
            match = _find_column(columns, name, case_insensitive=True)
            if match is None:
                raise UserError(f"SQL compilation error: error line 0 at position -1\ninvalid identifier "
                                  f"'{quote(name)}'", code=904, sqlstate="42000")
            chosen.append(match)
        columns = chosen
    return Target(database, schema, table, columns)


def _find_column(columns, name: str, *, case_insensitive: bool):
    for column in columns:
        if column[0] == name:
            return column
    if case_insensitive:
        for column in columns:
            if column[0].upper() == name.upper():
                return column
    return None


def _abort_error(report: FileReport) -> UserError:
    first = report.first
    lines = [first.message]
    where = f"  File '{report.file}'"
    if first.line is not None:
        where += f", line {first.line}"
    if first.character is not None:
        where += f", character {first.character}"
    lines.append(where)
    if first.column:
        lines.append(f"  Row {first.row}, column {first.column}" if first.row else f"  Column {first.column}")
    lines.append("  " + ON_ERROR_HINT)
    return UserError("\n".join(lines), code=100038, sqlstate="22018")


def _load_all_or_nothing(con, target: Target, location, staged: list, fmt: FileFormat,
                         options: CopyOptions) -> list[FileReport]:
    """ABORT_STATEMENT: every file in one transaction; the first bad row rolls all of them back."""
    reports = []
    con.execute("BEGIN")
    try:
        for staged_file in staged:
            report = _load_file(con, target, location, staged_file, fmt, options)
            if report.errors_seen:
                raise _abort_error(report)
            reports.append(report)
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise UserError(f"COPY INTO {quote(target.table)} failed on file '{location.prefix}{staged_file.relative}': "
                          f"{duckdb_message(exc)}\n  {ON_ERROR_HINT}", code=100038, sqlstate="22018") from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return reports


def _load_on_its_own(con, target: Target, location, staged: stage_files.StagedFile, fmt: FileFormat,
                     options: CopyOptions) -> FileReport:
    """CONTINUE and SKIP_FILE: one transaction per file, so a file that cannot be read (or that SKIP_FILE
    rejects) leaves nothing behind while the others load."""
    con.execute("BEGIN")
    try:
        report = _load_file(con, target, location, staged, fmt, options)
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        report = FileReport(location.prefix + staged.relative, status="LOAD_FAILED", errors_seen=1,
                            first=RowError(None, None, None, duckdb_message(exc)))
        report.errors = [report.first]
        report.error_limit = options.skip_file_limit if options.on_error != "CONTINUE" else 0
        return report
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if options.on_error == "CONTINUE":
        report.error_limit = report.rows_parsed
        con.execute("COMMIT")
    else:
        report.error_limit = options.skip_file_limit
        if report.errors_seen >= options.skip_file_limit:
            con.execute("ROLLBACK")
            report.rows_loaded = 0
        else:
            con.execute("COMMIT")
    if report.errors_seen:
        report.status = "PARTIALLY_LOADED" if report.rows_loaded else "LOAD_FAILED"
    return report


def _load_file(con, target: Target, location, staged: stage_files.StagedFile, fmt: FileFormat,
               options: CopyOptions) -> FileReport:
    loader = {"CSV": _load_csv, "JSON": _load_json, "PARQUET": _load_parquet}[fmt.type]
    parsed, loaded, errors = loader(con, target, target.sql, staged, fmt, options)
    return FileReport(location.prefix + staged.relative, rows_parsed=parsed, rows_loaded=loaded,
                      errors_seen=len(errors), first=errors[0] if errors else None, errors=list(errors))


def _column_list(target: Target) -> str:
    return ", ".join(quote_always(c) for c, _ in target.columns)


def _compression(fmt: FileFormat) -> str:
    value = fmt.compression.upper()
    return {"AUTO": "auto", "NONE": "none", "GZIP": "gzip", "ZSTD": "zstd"}.get(value, value.lower())


# -- CSV -------------------------------------------------------------------------------------------

def _load_csv(con, target: Target, destination: str, staged, fmt: FileFormat, options: CopyOptions):
    types = dict(target.columns)
    if options.match_by_column_name:
        if not fmt.parse_header:
            raise UserError("MATCH_BY_COLUMN_NAME for CSV files needs the file format option "
                              "PARSE_HEADER = TRUE.", code=2019, sqlstate="0A000")
        header = _csv_header(staged.path, fmt)
        file_columns = {}
        for name in header:
            match = _find_column(target.columns, name,
                                 case_insensitive=options.match_by_column_name == "CASE_INSENSITIVE")
            file_columns[name] = (match[1] if match else "VARCHAR", match[0] if match else None)
        columns = {n: t for n, (t, _) in file_columns.items()}
        pairs = [(n, m) for n, (_, m) in file_columns.items() if m is not None]
        insert_columns = ", ".join(quote_always(m) for _, m in pairs)
        projection = ", ".join(quote_always(n) for n, _ in pairs)
        header_option, skip = "true", 0
    else:
        columns = {name: types[name] for name, _ in target.columns}
        insert_columns, projection = _column_list(target), "*"
        header_option, skip = "false", fmt.skip_header
    struct = "{" + ", ".join(f"{_literal(n)}: {_literal(t)}" for n, t in columns.items()) + "}"
    nulls = list(fmt.null_if) + ([""] if fmt.empty_field_as_null else [])
    quote_char = fmt.enclosed_by or ""
    reader = (f"read_csv({_literal(str(staged.path))}, columns={struct}, header={header_option}, skip={skip}, "
              f"delim={_literal(fmt.field_delimiter)}, quote={_literal(quote_char)}, escape={_literal(quote_char)}, "
              f"nullstr=[{', '.join(_literal(n) for n in nulls) or _literal(chr(0))}], allow_quoted_nulls=false, "
              f"auto_detect=false, compression={_literal(_compression(fmt))}, max_line_size={MAX_LINE_SIZE}, "
              "store_rejects=true, rejects_table='_copy_rejects', rejects_scan='_copy_scans')")
    loaded = con.execute(f"INSERT INTO {destination} ({insert_columns}) SELECT {projection} FROM {reader}").fetchone()[0]
    rejects = con.execute(
        "SELECT line, byte_position - line_byte_position + 1, column_name, error_type, error_message, csv_line "
        "FROM _copy_rejects ORDER BY line, column_idx").fetchall()
    con.execute("DROP TABLE IF EXISTS _copy_rejects")
    con.execute("DROP TABLE IF EXISTS _copy_scans")
    errors, seen_lines = [], set()
    header_lines = 1 if header_option == "true" else skip
    for line, character, column, error_type, message, _text in rejects:
        if line in seen_lines:
            continue  # Snowflake counts a row once, with its first error
        seen_lines.add(line)
        errors.append(RowError(int(line), int(character) if character is not None else None,
                               target.column_label(_target_name(column, target)) if column else None,
                               _snowflake_message(str(error_type), message, types.get(_target_name(column, target)),
                                                  len(columns)),
                               row=int(line) - header_lines))
    return loaded + len(errors), loaded, errors


def _target_name(column: str | None, target: Target) -> str | None:
    if column is None:
        return None
    match = _find_column(target.columns, column, case_insensitive=True)
    return match[0] if match else column


def _csv_header(path, fmt: FileFormat) -> list[str]:
    opener = gzip.open if path.suffix.lower() == ".gz" or fmt.compression.upper() == "GZIP" else open
    with opener(path, "rb") as raw:
        first = codecs.getreader("utf-8")(raw).readline()
    reader = csv.reader(io.StringIO(first), delimiter=fmt.field_delimiter,
                        quotechar=fmt.enclosed_by or '"', quoting=csv.QUOTE_MINIMAL if fmt.enclosed_by else csv.QUOTE_NONE)
    return next(reader, [])


def _snowflake_message(error_type: str, message: str, column_type: str | None, expected: int) -> str:
    """DuckDB's reject messages in the words Snowflake uses for the same problems."""
    if error_type == "CAST":
        value = re.search(r'Could not convert string "(.*)" to', message or "")
        shown = value.group(1) if value else ""
        kind = (column_type or "").upper()
        if NUMERIC.match(kind):
            return f"Numeric value '{shown}' is not recognized"
        if kind == "BOOLEAN":
            return f"Boolean value '{shown}' is not recognized"
        if kind == "DATE":
            return f"Date '{shown}' is not recognized"
        if kind.startswith("TIMESTAMP"):
            return f"Timestamp '{shown}' is not recognized"
        return message
    if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        found = re.search(r"Found: (\d+)", message or "")
        count = found.group(1) if found else "?"
        return (f"Number of columns in file ({count}) does not match that of the corresponding table ({expected}), "
                "use file format option error_on_column_count_mismatch=false to ignore this error")
    return message


# -- JSON ------------------------------------------------------------------------------------------

def _load_json(con, target: Target, destination: str, staged, fmt: FileFormat, options: CopyOptions):
    path = _literal(str(staged.path))
    if fmt.strip_outer_array:
        con.execute("CREATE OR REPLACE TEMP TABLE _copy_lines AS SELECT row_number() OVER () AS line, "
                    f"CAST(to_json(json) AS VARCHAR) AS doc FROM read_json({path}, format='array', records=false, "
                    f"compression={_literal(_compression(fmt))})")
    else:
        # One row per physical line (the \x01 delimiter never splits a JSON line), so row_number() is the
        # line number that error reports give.
        con.execute("CREATE OR REPLACE TEMP TABLE _copy_lines AS SELECT row_number() OVER () AS line, doc "
                    f"FROM read_csv({path}, columns={{'doc': 'VARCHAR'}}, header=false, delim={_literal(chr(1))}, "
                    f"quote='', escape='', auto_detect=false, compression={_literal(_compression(fmt))}, "
                    f"max_line_size={MAX_LINE_SIZE})")
    con.execute("DELETE FROM _copy_lines WHERE doc IS NULL OR trim(doc) = ''")
    bad = con.execute("SELECT line, doc FROM _copy_lines WHERE NOT json_valid(doc) OR "
                      "(CASE WHEN json_valid(doc) THEN json_type(doc) END) <> 'OBJECT' ORDER BY line").fetchall()
    errors = {int(line): RowError(int(line), 1, None, _json_message(doc)) for line, doc in bad}
    con.execute("DELETE FROM _copy_lines WHERE NOT json_valid(doc) OR "
                "(CASE WHEN json_valid(doc) THEN json_type(doc) END) <> 'OBJECT'")
    values = _json_values(con, target, options)
    for name, expression in values:
        kind = dict(target.columns)[name]
        for (line, value) in con.execute(
                f"SELECT line, CAST({expression} AS VARCHAR) FROM _copy_lines WHERE {expression} IS NOT NULL "
                f"AND TRY_CAST({expression} AS {kind}) IS NULL ORDER BY line").fetchall():
            if int(line) not in errors:
                message = _snowflake_message("CAST", f'Could not convert string "{value}" to', kind, 0)
                if message.startswith("Could not"):
                    message = f"Value '{value}' cannot be converted to {kind}"
                errors[int(line)] = RowError(int(line), None, target.column_label(name), message, row=int(line))
    parsed = con.execute("SELECT count(*) FROM _copy_lines").fetchone()[0] + len(bad)
    # Not `line NOT IN (NULL)` when every line is good: that is never true, and would load nothing.
    good = f"WHERE line NOT IN ({', '.join(str(line) for line in errors)})" if errors else ""
    projection = ", ".join(f"CAST({expr} AS {dict(target.columns)[n]})" for n, expr in values)
    loaded = con.execute(f"INSERT INTO {destination} ({', '.join(quote_always(n) for n, _ in values)}) "
                         f"SELECT {projection} FROM _copy_lines {good}").fetchone()[0]
    con.execute("DROP TABLE _copy_lines")
    ordered = [errors[line] for line in sorted(errors)]
    return parsed, loaded, ordered


def _json_message(doc: str) -> str:
    return (f"Error parsing JSON: {doc[:60]}" if not doc.lstrip().startswith(("{", "["))
            else "Error parsing JSON: not an object")


def _json_values(con, target: Target, options: CopyOptions) -> list[tuple[str, str]]:
    """(target column, SQL expression on `doc`) for each column the documents fill."""
    if not options.match_by_column_name:
        if len(target.columns) != 1:
            raise _single_column_error("JSON")
        name, kind = target.columns[0]
        return [(name, "doc" if kind.upper() == "VARCHAR" else "CAST(doc AS JSON)")]
    keys = [k for (k,) in con.execute("SELECT DISTINCT unnest(json_keys(doc)) FROM _copy_lines").fetchall()]
    values = []
    for name, kind in target.columns:
        if options.match_by_column_name == "CASE_INSENSITIVE":
            matching = [k for k in keys if k.upper() == name.upper()]
        else:
            matching = [k for k in keys if k == name]
        if not matching:
            continue
        arrow = "->" if kind.upper() == "JSON" else "->>"
        parts = [f"(doc {arrow} {_literal(_json_path(k))})" for k in sorted(matching)]
        values.append((name, parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"))
    if not values:
        raise UserError(f"No column of table {quote(target.table)} matches a field of the staged documents "
                          "(MATCH_BY_COLUMN_NAME).", code=100351, sqlstate="22000")
    return values


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _single_column_error(kind: str) -> UserError:
    return UserError(f"SQL compilation error: {kind} file format can produce one and only one column of type "
                       "variant, object, or array. Load data into separate columns using the "
                       "MATCH_BY_COLUMN_NAME copy option or copy with transformation.", code=2019, sqlstate="0A000")


# -- Parquet ---------------------------------------------------------------------------------------

def _load_parquet(con, target: Target, destination: str, staged, fmt: FileFormat, options: CopyOptions):
    path = _literal(str(staged.path))
    names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()]
    if not options.match_by_column_name:
        if len(target.columns) != 1:
            raise _single_column_error("PARQUET")
        name, kind = target.columns[0]
        pairs = [(name, f"CAST(to_json(p) AS {kind})")]
        source = f"read_parquet({path}) AS p"
    else:
        pairs = []
        for name, kind in target.columns:
            found = [n for n in names if (n.upper() == name.upper() if options.match_by_column_name ==
                                          "CASE_INSENSITIVE" else n == name)]
            if found:
                pairs.append((name, f"CAST({quote_always(found[0])} AS {kind})"))
        source = f"read_parquet({path})"
    loaded = con.execute(f"INSERT INTO {destination} ({', '.join(quote_always(n) for n, _ in pairs)}) "
                         f"SELECT {', '.join(e for _, e in pairs)} FROM {source}").fetchone()[0]
    return loaded, loaded, []
