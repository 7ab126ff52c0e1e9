"""CREATE / ALTER / DROP USER, SHOW USERS and DESCRIBE USER, on access/users.py.

Each statement is read with the GRANT statements' tokenizer into a call to the user service, which
checks who may and records the access history; what it answers becomes the statement's rows. The
naming rule and the properties are the service's.
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from access import users
from catalog.identifiers import normalize
from sqlengine import show
from sqlengine.results import Result, status
from sqlengine.statements.grants import Tokens

SHOW_COLUMNS = ["name", "created_on", "login_name", "display_name", "email", "comment", "disabled",
                "must_change_password", "default_role", "default_warehouse", "owner", "last_success_login"]
SHOW_TYPES = ["TEXT", "TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
              "TIMESTAMP_LTZ"]
DESCRIBE_COLUMNS = ["property", "value", "default", "description"]
# Property: (description, default as DESCRIBE shows it).
PROPERTIES: dict[str, tuple[str, str | None]] = {
    "NAME": ("Name", None),
    "COMMENT": ("user comment associated to an object in the dictionary", None),
    "DISPLAY_NAME": ("Display name of the associated object", None),
    "LOGIN_NAME": ("Login name of the user", None),
    "EMAIL": ("Email address of the user", None),
    "PASSWORD": ("Password of the user", None),
    "DISABLED": ("Whether the user is disabled", "false"),
    "MUST_CHANGE_PASSWORD": ("User must change the password", "false"),
    "DEFAULT_WAREHOUSE": ("Default warehouse for this user", None),
    "DEFAULT_ROLE": ("Primary default role for this user", None),
}


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, exp.Show):
        return str(statement.this).upper() == "USERS"
    if isinstance(statement, exp.Command):
        words = _text(statement).upper().split()
        if words[:2] in (["ALTER", "USER"], ["DROP", "USER"], ["SHOW", "USERS"], ["CREATE", "USER"],
                         ["DESCRIBE", "USER"], ["DESC", "USER"]):
            return True
        return words[:4] == ["CREATE", "OR", "REPLACE", "USER"]
    return False


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    text = _text(statement)
    if isinstance(statement, exp.Show):
        spec = show.from_expression(statement)
        return _show(session, like=spec.like, starts_with=spec.starts_with, limit=spec.limit)
    tokens = Tokens(text)
    if tokens.accept("SHOW"):
        tokens.accept("TERSE")
        tokens.expect("USERS")
        like = tokens.string() if tokens.accept("LIKE") else None
        tokens.end()
        return _show(session, like=like)
    if tokens.accept("CREATE"):
        or_replace = tokens.accept("OR", "REPLACE")
        tokens.expect("USER")
        if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
        name = tokens.name("a user name")
        properties = _properties(tokens)
        tokens.end()
        return status(users.create_user(session, name, properties, or_replace=or_replace,
                                        if_not_exists=if_not_exists))
    if tokens.accept("ALTER", "USER"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("a user name")
        if tokens.accept("RENAME", "TO"):
            new_name = tokens.name("a user name")
            tokens.end()
            return status(users.rename_user(session, name, new_name, if_exists=if_exists))
        if tokens.accept("SET"):
            properties = _properties(tokens)
            if not properties:
                raise tokens.error("a property to set")
            tokens.end()
            return status(users.alter_user(session, name, properties, if_exists=if_exists))
        tokens.expect("UNSET")
        names = []
        while True:
            names.append(_property_name(tokens))
            if not tokens.accept(","):
                break
        tokens.end()
        return status(users.alter_user(session, name, {n: None for n in names}, if_exists=if_exists))
    if tokens.accept("DROP", "USER"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("a user name")
        tokens.end()
        return status(users.drop_user(session, name, if_exists=if_exists))
    if not tokens.accept("DESCRIBE"):
        tokens.expect("DESC")
    tokens.expect("USER")
    name = tokens.name("a user name")
    tokens.end()
    return _describe(session, name)


# Parsing properties -------------------------------------------------------------------------------

def _property_name(tokens: Tokens) -> str:
    word = (tokens.peek() or "").upper()
    if word not in users.SETTABLE:
        raise tokens.error("one of " + ", ".join(users.SETTABLE))
    tokens.i += 1
    return word


def _properties(tokens: Tokens) -> dict[str, Any]:
    """PROP = value pairs, until the statement ends; values: strings, TRUE/FALSE, names."""
    properties: dict[str, Any] = {}
    while tokens.peek() is not None:
        name = _property_name(tokens)
        tokens.expect("=")
        token = tokens.peek()
        if token is None:
            raise tokens.error(f"a value for {name}")
        if name in ("MUST_CHANGE_PASSWORD", "DISABLED"):
            if token.upper() not in ("TRUE", "FALSE"):
                raise tokens.error(f"TRUE or FALSE for {name}")
            tokens.i += 1
            value: Any = token.upper() == "TRUE"
        elif name in ("DEFAULT_ROLE", "DEFAULT_WAREHOUSE") and not token.startswith("'"):
            value = normalize(tokens.name(f"a value for {name}"))
        elif name in ("LOGIN_NAME", "DISPLAY_NAME") and not token.startswith("'"):
            value = tokens.name(f"a value for {name}")
        else:
            value = tokens.string()
        properties[name] = value
        tokens.accept(",")
    return properties


# The answers as rows -----------------------------------------------------------------------------

def _show(session, *, like: str | None = None, starts_with: str | None = None, limit: int | None = None) -> Result:
    rows = []
    for user in users.list_users(session):
        if like is not None and not show.like_matches(like, user["name"]):
            continue
        if starts_with is not None and not user["name"].startswith(starts_with):
            continue
        rows.append(tuple(user[c] for c in SHOW_COLUMNS))
    return Result(list(SHOW_COLUMNS), rows[:limit] if limit is not None else rows, list(SHOW_TYPES))


def _describe(session, text: str) -> Result:
    values = users.describe_user(session, text)
    rows = [(prop, "null" if values[prop] is None else str(values[prop]),
             "null" if default is None else default, description)
            for prop, (description, default) in PROPERTIES.items()]
    return Result(list(DESCRIBE_COLUMNS), rows, ["TEXT"] * 4)
