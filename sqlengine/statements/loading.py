"""Loading data: stages (CREATE / DROP / SHOW / DESCRIBE STAGE, LIST, REMOVE), PUT, GET and COPY INTO <table>.

The stage folders and who may use a stage are in catalog/stages.py (every statement here names the
privilege it needs to stages.resolve), the files in catalog/stage_files.py, the loading itself in
catalog/copy_into.py; this module reads the statements' options out of sqlglot's tree.
"""
from __future__ import annotations

import glob
import re
from pathlib import Path

from sqlglot import exp

from catalog import copy_into, copy_options, listing, stage_files, stages
from catalog.identifiers import quote
from errors import UserError, compilation_error
from sandbox.expressions import constant, name_parts
from sqlengine import show
from sqlengine.results import Result, status

PUT_COLUMNS = ["source", "target", "source_size", "target_size", "source_compression", "target_compression",
               "status", "message"]
LIST_COLUMNS = ["name", "size", "md5", "last_modified"]
GET_COLUMNS = ["file", "size", "status", "message"]
DESCRIBE_STAGE_COLUMNS = ["parent_property", "property", "property_type", "property_value", "property_default"]
SHOW_STAGES_COLUMNS = ["created_on", "name", "database_name", "schema_name", "url", "has_credentials",
                       "has_encryption_key", "owner", "comment", "region", "type", "cloud", "storage_integration",
                       "endpoint", "owner_role_type", "directory_enabled"]
CSV_OPTIONS = {"TYPE", "SKIP_HEADER", "FIELD_DELIMITER", "FIELD_OPTIONALLY_ENCLOSED_BY", "NULL_IF",
               "EMPTY_FIELD_AS_NULL", "COMPRESSION", "PARSE_HEADER", "STRIP_OUTER_ARRAY"}


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, (exp.Put, exp.ListStage)):
        return True
    if isinstance(statement, exp.Copy):
        return True
    if isinstance(statement, (exp.Create, exp.Drop, exp.Describe)):
        return str(statement.args.get("kind") or "").upper() == "STAGE"
    if isinstance(statement, exp.Show):
        return str(statement.this).upper() == "STAGES"
    if isinstance(statement, exp.Command):
        return str(statement.this).upper() in ("REMOVE", "RM", "GET")
    return False


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    if isinstance(statement, exp.Put):
        return put(executor, statement)
    if isinstance(statement, exp.ListStage):
        ref = stages.StageRef.parse(statement.this.name)
        pattern = constant(statement.args["pattern"]) if statement.args.get("pattern") else None
        return list_stage(session, ref, pattern)
    if isinstance(statement, exp.Command) and str(statement.this).upper() == "GET":
        return get(executor, _command_rest(statement))
    if isinstance(statement, exp.Command):
        location, pattern = _remove_arguments(_command_rest(statement))
        return remove(session, stages.StageRef.parse(location), pattern)
    if isinstance(statement, exp.Copy):
        return copy(session, statement)
    if isinstance(statement, exp.Create):
        return create_stage(session, statement)
    if isinstance(statement, exp.Drop):
        return drop_stage(session, statement)
    if isinstance(statement, exp.Describe):
        return describe_stage(session, statement)
    return show_stages(session, statement)


def _command_rest(statement: exp.Command) -> str:
    rest = statement.expression
    return rest.name if isinstance(rest, exp.Expression) else (rest or "")


# -- stages ----------------------------------------------------------------------------------------

def create_stage(session, statement: exp.Create) -> Result:
    database, schema, name = stages.qualify(name_parts(statement.this), session, what="stage")
    comment = ""
    for prop in (statement.args.get("properties").expressions if statement.args.get("properties") else []):
        if isinstance(prop, exp.SchemaCommentProperty):
            comment = constant(prop.this)
        elif isinstance(prop, exp.Property) and prop.name.upper() in ("URL", "STORAGE_INTEGRATION", "CREDENTIALS"):
            raise UserError("External stages (URL = …) are not supported: this account has internal stages only. "
                              "Create the stage without URL and PUT or upload files into it.",
                              code=2019, sqlstate="0A000")
    _stage, created = stages.create_stage(session, database, schema, name,
                                          replace=bool(statement.args.get("replace")),
                                          if_not_exists=bool(statement.args.get("exists")), comment=comment)
    if not created:
        return status(f"{quote(name)} already exists, statement succeeded.")
    return status(f"Stage area {quote(name)} successfully created.")


def drop_stage(session, statement: exp.Drop) -> Result:
    table = statement.this if statement.this is not None else statement.args["tables"][0]
    database, schema, name = stages.qualify(name_parts(table), session, what="stage")
    if not stages.drop_stage(session, database, schema, name, if_exists=bool(statement.args.get("exists"))):
        return status(f"Drop statement executed successfully ({quote(name)} already dropped).")
    return status(f"{quote(name)} successfully dropped.")


def describe_stage(session, statement: exp.Describe) -> Result:
    """DESCRIBE STAGE: READ on it, as Snowflake asks of an internal stage. Stages here keep no file
    format or copy options of their own, so each property shows its default."""
    ref = stages.StageRef("named", name_parts(statement.this), "")
    stages.resolve(ref, session, stages.READ)
    rows = [("STAGE_FILE_FORMAT", "TYPE", "String", "CSV", "CSV"),
            ("STAGE_COPY_OPTIONS", "ON_ERROR", "String", "ABORT_STATEMENT", "ABORT_STATEMENT"),
            ("STAGE_LOCATION", "URL", "String", "", ""),
            ("DIRECTORY", "ENABLE", "Boolean", "false", "false")]
    return Result(DESCRIBE_STAGE_COLUMNS, rows, ["TEXT"] * len(DESCRIBE_STAGE_COLUMNS))


def show_stages(session, statement: exp.Show) -> Result:
    database = schema = None
    scope, kind = statement.args.get("scope"), str(statement.args.get("scope_kind") or "").upper()
    if scope is not None:
        parts = name_parts(scope)
        if kind == "DATABASE" or (not kind and len(parts) == 1):
            database = parts[-1]
        elif kind in ("SCHEMA", ""):
            database, schema = (parts[0] if len(parts) == 2 else session.database), parts[-1]
    elif kind != "ACCOUNT" and session.database:
        database = session.database
    # Snowflake lists the stages the role owns or holds a privilege on, IN ACCOUNT too.
    found = listing.stages(session, database, schema)
    if statement.args.get("like") is not None:
        pattern = constant(statement.args["like"])
        found = [s for s in found if show.like_matches(pattern, s.name)]
    rows = [(s.created_on, s.name, s.database, s.schema, "", "N", "N", s.owner, s.comment,
             None, "INTERNAL", None, None, None, "ROLE", "N") for s in found]
    return Result(SHOW_STAGES_COLUMNS, rows, ["TIMESTAMP_LTZ"] + ["TEXT"] * (len(SHOW_STAGES_COLUMNS) - 1))


def list_stage(session, ref: stages.StageRef, pattern: str | None) -> Result:
    location = stages.resolve(ref, session, stages.READ)
    rows = [(location.prefix + f.relative, f.size, stage_files.md5_of(location, f), stage_files.last_modified(f))
            for f in stage_files.list_files(location, ref.path, pattern)]
    return Result(LIST_COLUMNS, rows, ["TEXT", "NUMBER", "TEXT", "TEXT"])


def remove(session, ref: stages.StageRef, pattern: str | None) -> Result:
    location = stages.resolve(ref, session, stages.WRITE)
    removed = stage_files.remove_files(location, ref.path, pattern)
    return Result(["name", "result"], [(location.prefix + f.relative, "removed") for f in removed], ["TEXT", "TEXT"])


def _remove_arguments(text: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"""\s*(@(?:"[^"]*"|[^\s"])+)\s*(?:PATTERN\s*=\s*'((?:[^']|'')*)')?\s*;?\s*""", text,
                         re.IGNORECASE)
    if match is None:
        raise compilation_error(f"REMOVE needs a stage location (REMOVE @stage[/path] [PATTERN = '…']), got '{text}'.")
    return match.group(1), match.group(2).replace("''", "'") if match.group(2) is not None else None


# -- PUT -------------------------------------------------------------------------------------------

def put(executor, statement: exp.Put) -> Result:
    if not executor.local_files:
        raise UserError("PUT reads a file on the machine that runs it, so it works from the command line "
                          "(manage.py sql) only. Upload the file with POST /api/v2/stages/<stage>/files "
                          "(stage name URL-encoded, ~ for your user stage), then run COPY INTO.",
                          code=2019, sqlstate="0A000")
    source_text = constant(statement.this) if isinstance(statement.this, exp.Literal) else statement.this.name
    if not source_text.lower().startswith("file://"):
        raise compilation_error(f"PUT needs a local file as file://<path>, got '{source_text}'.")
    options = {p.name.upper(): constant(p.args["value"]) for p in
               (statement.args.get("properties").expressions if statement.args.get("properties") else [])}
    unknown = set(options) - {"OVERWRITE", "AUTO_COMPRESS", "PARALLEL", "SOURCE_COMPRESSION"}
    if unknown:
        raise compilation_error(f"invalid PUT option {', '.join(sorted(unknown))}; supported: OVERWRITE, AUTO_COMPRESS.")
    ref = stages.StageRef.parse(statement.args["target"].name)
    location = stages.resolve(ref, executor.session, stages.WRITE)
    pattern = source_text[len("file://"):]
    sources = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_file())
    if not sources:
        raise UserError(f"File doesn't exist: ['{pattern}']", code=253006, sqlstate="22000")
    rows = []
    for source in sources:
        outcome = stage_files.put_file(location, source, ref.path, overwrite=_true(options.get("OVERWRITE", False)),
                                  auto_compress=_true(options.get("AUTO_COMPRESS", True)))
        rows.append((outcome.source, outcome.target, outcome.source_size, outcome.target_size,
                     outcome.source_compression, outcome.target_compression, outcome.status, outcome.message))
    return Result(PUT_COLUMNS, rows, ["TEXT", "TEXT", "NUMBER", "NUMBER", "TEXT", "TEXT", "TEXT", "TEXT"])


# -- GET -------------------------------------------------------------------------------------------

_GET = re.compile(r"""\s*(?P<stage>'[^']*'|@(?:"[^"]*"|[^\s"'])+)\s+(?P<target>'[^']*'|file://\S+)
    (?P<options>(?:\s+(?:PATTERN\s*=\s*'(?:[^']|'')*'|PARALLEL\s*=\s*\d+))*)\s*;?\s*""", re.IGNORECASE | re.VERBOSE)


def get(executor, text: str) -> Result:
    """GET @stage[/path] file://<folder> [PATTERN = '…']: READ on the stage; the command line only, as PUT."""
    if not executor.local_files:
        raise UserError("GET writes files on the machine that runs it, so it works from the command line "
                          "(manage.py sql) only.", code=2019, sqlstate="0A000")
    match = _GET.fullmatch(text)
    if match is None:
        raise compilation_error(f"GET needs a stage and a local folder: GET @stage[/path] file://<folder> "
                                f"[PATTERN = '…'], got '{text}'.")
    target = match["target"].strip("'")
    if not target.lower().startswith("file://"):
        raise compilation_error(f"GET writes into a local folder given as file://<folder>, got '{target}'.")
    pattern = re.search(r"PATTERN\s*=\s*'((?:[^']|'')*)'", match["options"], re.IGNORECASE)
    ref = stages.StageRef.parse(match["stage"])
    location = stages.resolve(ref, executor.session, stages.READ)
    folder = Path(target[len("file://"):]).expanduser()
    written = stage_files.download_files(location, ref.path, pattern[1].replace("''", "'") if pattern else None, folder)
    return Result(GET_COLUMNS, [(staged.relative, staged.size, "DOWNLOADED", "") for staged, _path in written],
                  ["TEXT", "NUMBER", "TEXT", "TEXT"])


def _true(value) -> bool:
    return value if isinstance(value, bool) else str(value).upper() in ("TRUE", "1", "YES")


# -- COPY INTO -------------------------------------------------------------------------------------

def copy(session, statement: exp.Copy) -> Result:
    target = statement.this
    columns = None
    if isinstance(target, exp.Schema):
        columns = [name_parts(c)[-1] for c in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table) or isinstance(target.this, exp.Var):
        raise UserError("COPY INTO <location> (unloading to a stage) is not supported; COPY INTO <table> loads.",
                          code=2019, sqlstate="0A000")
    sources = statement.args.get("files") or []
    if len(sources) != 1 or not isinstance(sources[0], exp.Table) or not isinstance(sources[0].this, exp.Var) \
            or not sources[0].this.name.startswith("@"):
        raise UserError("COPY INTO loads from a stage only: COPY INTO <table> FROM @stage[/path] … "
                          "(PUT or upload the file to a stage first; transformations are not supported).",
                          code=2019, sqlstate="0A000")
    database, schema, table = stages.qualify(name_parts(target), session, what="table")
    ref = stages.StageRef.parse(sources[0].this.name)
    fmt, options = _copy_options(statement)
    options.columns = columns
    reports = copy_into.copy_from_stage(session, (database, schema, table), ref, fmt, options)
    if not reports:
        return status("Copy executed with 0 files processed.")
    return Result(copy_options.RESULT_COLUMNS, [r.row() for r in reports], copy_options.RESULT_TYPES)


def _copy_options(statement: exp.Copy) -> tuple[copy_options.FileFormat, copy_options.CopyOptions]:
    fmt, options = copy_options.FileFormat(), copy_options.CopyOptions()
    for param in statement.args.get("params") or []:
        key = param.name.upper()
        value = param.args.get("expression")
        if key == "FILE_FORMAT":
            _file_format(fmt, param.expressions)
        elif key == "FILES":
            items = value.expressions if isinstance(value, exp.Tuple) else [value]
            options.files = [str(constant(i)) for i in items]
        elif key == "PATTERN":
            options.pattern = constant(value)
        elif key == "ON_ERROR":
            options.on_error, options.skip_file_limit = _on_error(_word(value))
        elif key == "MATCH_BY_COLUMN_NAME":
            mode = _word(value)
            if mode not in ("CASE_SENSITIVE", "CASE_INSENSITIVE", "NONE"):
                raise compilation_error(f"invalid value '{mode}' for MATCH_BY_COLUMN_NAME; use CASE_SENSITIVE, "
                                        "CASE_INSENSITIVE or NONE.")
            options.match_by_column_name = None if mode == "NONE" else mode
        elif key == "FORCE":
            options.force = _true(_word(value))
        elif key == "PURGE":
            if _true(_word(value)):
                raise compilation_error("PURGE = TRUE is not supported; remove loaded files with REMOVE.")
        else:
            raise compilation_error(f"invalid COPY option {key}; supported: FILES, PATTERN, FILE_FORMAT, ON_ERROR, "
                                    "MATCH_BY_COLUMN_NAME, FORCE.")
    return fmt, options


def _count(node: exp.Expression, option: str) -> int:
    value = constant(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise compilation_error(f"invalid value '{node.sql(dialect='snowflake')}' for {option}: use a whole number "
                                "of lines, e.g. 1.")
    return value


def _word(node: exp.Expression) -> str:
    if isinstance(node, (exp.Var, exp.Identifier, exp.Column)):
        return node.name.upper()
    if isinstance(node, exp.Boolean):
        return "TRUE" if node.this else "FALSE"
    return str(constant(node)).upper()


def _on_error(value: str) -> tuple[str, int]:
    if value in ("ABORT_STATEMENT", "CONTINUE", "SKIP_FILE"):
        return value, 1
    match = re.fullmatch(r"SKIP_FILE_(\d+)", value)
    if match and int(match.group(1)) > 0:
        return "SKIP_FILE", int(match.group(1))
    raise compilation_error(f"invalid value '{value}' for ON_ERROR; use ABORT_STATEMENT, CONTINUE, SKIP_FILE or "
                            "SKIP_FILE_<n>.")


def _file_format(fmt: copy_options.FileFormat, properties: list[exp.Expression]) -> None:
    for prop in properties:
        key = prop.name.upper()
        value = prop.args.get("value")
        if key == "TYPE":
            fmt.type = _word(value)
            if fmt.type not in ("CSV", "JSON", "PARQUET"):
                raise compilation_error(f"file format TYPE {fmt.type} is not supported; use CSV, JSON or PARQUET.")
        elif key == "SKIP_HEADER":
            fmt.skip_header = _count(value, "SKIP_HEADER")
        elif key == "FIELD_DELIMITER":
            fmt.field_delimiter = _escape(str(constant(value)))
        elif key == "FIELD_OPTIONALLY_ENCLOSED_BY":
            enclosed = _word(value) if not isinstance(value, exp.Literal) else constant(value)
            fmt.enclosed_by = None if enclosed in ("NONE", "") else enclosed
        elif key == "NULL_IF":
            items = value.expressions if isinstance(value, exp.Tuple) else [value]
            fmt.null_if = [str(constant(i)) for i in items]
        elif key == "EMPTY_FIELD_AS_NULL":
            fmt.empty_field_as_null = _true(_word(value))
        elif key == "COMPRESSION":
            fmt.compression = _word(value)
            if fmt.compression not in ("AUTO", "GZIP", "ZSTD", "NONE"):
                raise compilation_error(f"COMPRESSION {fmt.compression} is not supported; use AUTO, GZIP, ZSTD or NONE.")
        elif key == "STRIP_OUTER_ARRAY":
            fmt.strip_outer_array = _true(_word(value))
        elif key == "PARSE_HEADER":
            fmt.parse_header = _true(_word(value))
        elif key == "FORMAT_NAME":
            raise compilation_error("named file formats are not supported; give the options inline: "
                                    "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 …).")
        else:
            raise compilation_error(f"invalid file format option {key}; supported: {', '.join(sorted(CSV_OPTIONS))}.")


def _escape(text: str) -> str:
    """Snowflake writes a tab delimiter as '\\t'."""
    return {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\\\": "\\"}.get(text, text)
