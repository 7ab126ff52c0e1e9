"""Snowflake identifier rules: unquoted identifiers are case-insensitive and stored upper-case; a
double-quoted identifier keeps its case and may hold any character ("" escapes a quote)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from errors import UserError

UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


def _invalid(text: str, why: str) -> UserError:
    return UserError(
        f"Invalid identifier '{text}': {why}. Use letters, digits and underscores, starting with a "
        "letter or underscore, or enclose the name in double quotes.",
        code=2003,
        sqlstate="42601",
    )


def split_parts(text: str) -> list[str]:
    """Split `db."My Schema".name` on the dots that are not inside quotes, normalizing each part."""
    parts: list[str] = []
    i, n = 0, len(text)
    if not text.strip():
        raise _invalid(text, "the name is empty")
    while i < n:
        if text[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise _invalid(text, "a double quote is not closed")
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            if not buf:
                raise _invalid(text, "a quoted name is empty")
            if "\x00" in buf:  # PostgreSQL's text columns cannot hold it: a lookup would be a server error
                raise _invalid(text.replace("\x00", "\\x00"), "a name cannot contain the NUL character")
            parts.append("".join(buf))
            i = j + 1
        else:
            j = text.find(".", i)
            j = n if j == -1 else j
            raw = text[i:j].strip()
            if not UNQUOTED.match(raw):
                raise _invalid(text, f"'{raw}' is not a valid unquoted name")
            parts.append(raw.upper())
            i = j
        if i < n:
            if text[i] != ".":
                raise _invalid(text, "expected '.' between name parts")
            i += 1
            if i == n:
                raise _invalid(text, "the name ends with '.'")
    return parts


def quote(part: str) -> str:
    """Render one normalized part the way Snowflake shows it: bare when it needs no quotes."""
    if re.fullmatch(r"[A-Z_][A-Z0-9_$]*", part):
        return part
    return quote_always(part)


def quote_always(*parts: str) -> str:
    """Normalized parts in double quotes whatever they hold, joined by dots: how the studio's own SQL
    (for Snowflake's parser or for DuckDB) names an object, so no keyword, case rule or character in
    a name changes which object it means."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def normalize(name: str) -> str:
    """One name as a client sent it (a request body, a command-line option, a property's value): a
    "quoted" name as written without its quotes, any other upper-cased. Unlike split_parts it neither
    splits on dots nor checks the identifier rules: a name that breaks them names nothing, and the
    lookup that follows says so."""
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name.upper()


@dataclass(frozen=True)
class QualifiedName:
    database: str
    schema: str
    name: str

    def __str__(self) -> str:
        return ".".join(quote(p) for p in (self.database, self.schema, self.name))


def qualify(text: str, database: str | None, schema: str | None, *, what: str = "object") -> QualifiedName:
    """Resolve a one-, two- or three-part name against the session's current database and schema."""
    parts = split_parts(text)
    if len(parts) > 3:
        raise _invalid(text, "a name has at most three parts: database.schema.name")
    if len(parts) == 3:
        return QualifiedName(*parts)
    if len(parts) == 2:
        if not database:
            raise UserError(
                f"Cannot resolve {what} '{text}': this session has no current database. "
                "Run USE DATABASE or qualify the name as database.schema.name.",
                code=90105,
                sqlstate="22000",
            )
        return QualifiedName(database, parts[0], parts[1])
    if not database or not schema:
        raise UserError(
            f"Cannot resolve {what} '{text}': this session has no current "
            f"{'database' if not database else 'schema'}. Run USE DATABASE / USE SCHEMA or qualify "
            "the name as database.schema.name.",
            code=90105,
            sqlstate="22000",
        )
    return QualifiedName(database, schema, parts[0])
