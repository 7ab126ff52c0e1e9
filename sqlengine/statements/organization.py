"""CREATE ACCOUNT, DROP ACCOUNT and SHOW ACCOUNTS, on organization/accounts.py.

CREATE ACCOUNT registers another deployment of the organization (its URL and the key both sides sign
with); it does not create one, since each deployment is installed on its own machines.
"""
from __future__ import annotations

from sqlglot import exp

from organization import accounts
from sqlengine import show
from sqlengine.results import Result, status
from sqlengine.statements.grants import Tokens

SHOW_COLUMNS = ["organization_name", "account_name", "account_url", "created_on", "comment", "is_current",
                "key_fingerprint"]
SHOW_TYPES = ["TEXT", "TEXT", "TEXT", "TIMESTAMP_LTZ", "TEXT", "BOOLEAN", "TEXT"]


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, exp.Show):
        return str(statement.this).upper() == "ACCOUNTS"
    if isinstance(statement, (exp.Command, exp.Create, exp.Drop)):
        words = _text(statement).upper().split()
        return words[:2] in (["CREATE", "ACCOUNT"], ["DROP", "ACCOUNT"], ["SHOW", "ACCOUNTS"]) \
            or words[:4] == ["CREATE", "OR", "REPLACE", "ACCOUNT"]
    return False


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    tokens = Tokens(_text(statement))
    if tokens.accept("SHOW", "ACCOUNTS"):
        like = tokens.string() if tokens.accept("LIKE") else None
        tokens.end()
        return _show(session, like)
    if tokens.accept("DROP", "ACCOUNT"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("an account name")
        tokens.end()
        return status(accounts.drop(session, name, if_exists=if_exists))
    tokens.expect("CREATE")
    or_replace = tokens.accept("OR", "REPLACE")
    tokens.expect("ACCOUNT")
    if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
    name = tokens.name("an account name")
    properties: dict[str, str] = {}
    while tokens.peek() is not None:
        word = (tokens.peek() or "").upper()
        if word not in ("URL", "KEY", "COMMENT"):
            raise tokens.error("URL = '<address>', KEY = '<shared key>' or COMMENT = '<text>'")
        tokens.i += 1
        tokens.expect("=")
        properties[word] = tokens.string()
    for required in ("URL", "KEY"):
        if required not in properties:
            raise tokens.error(f"{required} = '…' (CREATE ACCOUNT <name> URL = '<address>' KEY = '<shared key>')")
    return status(accounts.register(session, name, url=properties["URL"], key=properties["KEY"],
                                    comment=properties.get("COMMENT", ""), or_replace=or_replace,
                                    if_not_exists=if_not_exists))


def _show(session, like: str | None) -> Result:
    rows = accounts.listed(session)
    if like is not None:
        rows = [r for r in rows if show.like_matches(like, str(r["account_name"]))]
    return Result(SHOW_COLUMNS, [tuple(r[c] for c in SHOW_COLUMNS) for r in rows], SHOW_TYPES)
