"""CREATE DATABASE … FROM SHARE, CREATE / DROP / ALTER SHARE, GRANT / REVOKE USAGE … TO | FROM SHARE, SHOW SHARES, DESCRIBE SHARE,
on sharing/shares.py. Asked before the catalog's and the GRANT
statements' modules, which would read FROM SHARE as a clone and TO SHARE as a role."""
from __future__ import annotations

import re

from sqlglot import exp

from sharing import imports, shares
from sqlengine import show
from sqlengine.results import Result, status
from sqlengine.statements.grants import Tokens

SHOW_COLUMNS = ["created_on", "kind", "owner_account", "name", "database_name", "to", "owner", "comment",
                "listing_global_name"]
SHOW_TYPES = ["TIMESTAMP_LTZ"] + ["TEXT"] * 8
DESCRIBE_COLUMNS = ["kind", "name", "shared_on"]
_FROM_SHARE = re.compile(r"\bFROM\s+SHARE\b", re.IGNORECASE)
_SHARE_GRANT = re.compile(r"^\s*(GRANT|REVOKE)\b.*\b(TO|FROM)\s+SHARE\b", re.IGNORECASE | re.DOTALL)


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, exp.Show):
        return str(statement.this).upper() == "SHARES"
    if not isinstance(statement, (exp.Command, exp.Create, exp.Drop, exp.Grant, exp.Revoke, exp.Describe, exp.Alter)):
        return False
    text = _text(statement)
    words = text.upper().split()
    if words[:2] in (["CREATE", "SHARE"], ["DROP", "SHARE"], ["ALTER", "SHARE"], ["SHOW", "SHARES"],
                     ["DESCRIBE", "SHARE"], ["DESC", "SHARE"]) or words[:4] == ["CREATE", "OR", "REPLACE", "SHARE"]:
        return True
    if words[:2] == ["CREATE", "DATABASE"] and _FROM_SHARE.search(text):
        return True
    return bool(_SHARE_GRANT.match(text))


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    tokens = Tokens(_text(statement))
    if tokens.accept("SHOW", "SHARES"):
        like = tokens.string() if tokens.accept("LIKE") else None
        tokens.end()
        rows = [r for r in shares.shown(session) if like is None or show.like_matches(like, str(r["name"]))]
        return Result(SHOW_COLUMNS, [tuple(r[c] for c in SHOW_COLUMNS) for r in rows], SHOW_TYPES)
    if tokens.accept("DESCRIBE") or tokens.accept("DESC"):
        tokens.expect("SHARE")
        name = tokens.name("a share name")
        tokens.end()
        rows = shares.described(session, name)
        return Result(DESCRIBE_COLUMNS, [tuple(r[c] for c in DESCRIBE_COLUMNS) for r in rows],
                      ["TEXT", "TEXT", "TIMESTAMP_LTZ"])
    if tokens.accept("DROP", "SHARE"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("a share name")
        tokens.end()
        return status(shares.drop(session, name, if_exists=if_exists))
    if tokens.accept("ALTER", "SHARE"):
        tokens.accept("IF", "EXISTS")
        name = tokens.name("a share name")
        action = next((a for a in ("ADD", "REMOVE", "SET") if tokens.accept(a)), None)
        if action is None:
            raise tokens.error("ADD ACCOUNTS, REMOVE ACCOUNTS or SET ACCOUNTS")
        tokens.expect("ACCOUNTS")
        tokens.expect("=")
        names = [tokens.name("an account (<organization>.<account>)")]
        while tokens.accept(","):
            names.append(tokens.name("an account (<organization>.<account>)"))
        tokens.end()
        return status(shares.alter_accounts(session, name, action, names))
    for verb, preposition, call in (("GRANT", "TO", shares.grant), ("REVOKE", "FROM", shares.revoke)):
        if tokens.accept(verb):
            privilege = tokens.name("a privilege")
            tokens.expect("ON")
            object_type = (tokens.peek() or "").upper()
            tokens.i += 1
            target = tokens.name(f"a {object_type.lower()} name")
            tokens.expect(preposition, "SHARE")
            share = tokens.name("a share name")
            tokens.end()
            return status(call(session, privilege, object_type, target, share))
    tokens.expect("CREATE")
    if tokens.accept("DATABASE"):
        name = tokens.name("a database name")
        tokens.expect("FROM", "SHARE")
        share = tokens.name("a share (<organization>.<account>.<share>)")
        tokens.end()
        return status(imports.create_from_share(session, name, share))
    or_replace = tokens.accept("OR", "REPLACE")
    tokens.expect("SHARE")
    if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
    name = tokens.name("a share name")
    comment = ""
    if tokens.accept("COMMENT"):
        tokens.expect("=")
        comment = tokens.string()
    tokens.end()
    return status(shares.create(session, name, comment=comment, or_replace=or_replace, if_not_exists=if_not_exists))
