"""What COPY INTO <table> is asked (the file format and the copy options) and what it answers: a report
per file, with every bad row. COPY's statement, the Data page's upload and the loading itself
(catalog/copy_into.py) share them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RESULT_COLUMNS = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen", "first_error",
                  "first_error_line", "first_error_character", "first_error_column_name"]
RESULT_TYPES = ["TEXT", "TEXT", "NUMBER", "NUMBER", "NUMBER", "NUMBER", "TEXT", "NUMBER", "NUMBER", "TEXT"]


@dataclass
class FileFormat:
    type: str = "CSV"
    skip_header: int = 0
    field_delimiter: str = ","
    enclosed_by: str | None = None  # FIELD_OPTIONALLY_ENCLOSED_BY; Snowflake's default is none
    null_if: list[str] = field(default_factory=lambda: ["\\N"])
    empty_field_as_null: bool = True
    compression: str = "AUTO"
    strip_outer_array: bool = False
    parse_header: bool = False


@dataclass
class CopyOptions:
    columns: list[str] | None = None
    files: list[str] | None = None
    pattern: str | None = None
    on_error: str = "ABORT_STATEMENT"
    skip_file_limit: int = 1  # SKIP_FILE_<n>: skip a file once it has n bad rows
    match_by_column_name: str | None = None  # CASE_SENSITIVE, CASE_INSENSITIVE or None
    force: bool = False


@dataclass
class RowError:
    line: int | None
    character: int | None
    column: str | None  # "T"["COL":2], Snowflake's way to name the column
    message: str
    row: int | None = None


@dataclass
class FileReport:
    file: str
    status: str = "LOADED"
    rows_parsed: int = 0
    rows_loaded: int = 0
    error_limit: int = 1
    errors_seen: int = 0
    first: RowError | None = None
    errors: list[RowError] = field(default_factory=list)  # every bad row; COPY's result shows the first

    def row(self) -> tuple:
        first = self.first
        return (self.file, self.status, self.rows_parsed, self.rows_loaded, self.error_limit, self.errors_seen,
                first.message if first else None, first.line if first else None,
                first.character if first else None, first.column if first else None)
