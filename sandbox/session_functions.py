"""CURRENT_ROLE(), CURRENT_DATABASE() and the other session functions, answered before DuckDB runs.

DuckDB has functions of some of these names (current_user, current_schema …) that answer about the
DuckDB connection; replacing them with literals from the session makes them answer about ours.
"""
from __future__ import annotations

from django.conf import settings
from sqlglot import exp

from access.session import Session
from catalog.identifiers import normalize
from sandbox.expressions import cortex_call

# What CURRENT_VERSION() reports: the Snowflake release whose SQL surface this studio follows.
VERSION = "9.0.0"
DEFAULT_ACCOUNT = "STUDIO"

# sqlglot parses these to their own expression classes in the Snowflake dialect; anonymous calls of
# the same names (other dialects, odd spellings) are matched by name below.
_CLASSES = {
    "CURRENT_ROLE": getattr(exp, "CurrentRole", None),
    "CURRENT_WAREHOUSE": getattr(exp, "CurrentWarehouse", None),
    "CURRENT_DATABASE": getattr(exp, "CurrentDatabase", None),
    "CURRENT_SCHEMA": getattr(exp, "CurrentSchema", None),
    "CURRENT_USER": getattr(exp, "CurrentUser", None),
    "CURRENT_ACCOUNT": getattr(exp, "CurrentAccount", None),
    "CURRENT_VERSION": getattr(exp, "CurrentVersion", None),
    "CURRENT_ORGANIZATION_NAME": getattr(exp, "CurrentOrganizationName", None),
    "CURRENT_ACCOUNT_NAME": getattr(exp, "CurrentAccountName", None),
}


def account_name() -> str:
    # As organization/names.py names the account in SHOW ACCOUNTS and between deployments.
    return normalize(getattr(settings, "ACCOUNT_NAME", DEFAULT_ACCOUNT))


def values(session: Session) -> dict[str, str | None]:
    return {
        "CURRENT_ROLE": session.role,
        "CURRENT_WAREHOUSE": session.warehouse,
        "CURRENT_DATABASE": session.database,
        "CURRENT_SCHEMA": session.schema if session.database else None,
        "CURRENT_USER": session.user_name,
        "CURRENT_ACCOUNT": account_name(),
        "CURRENT_VERSION": VERSION,
        "CURRENT_ORGANIZATION_NAME": normalize(settings.ORGANIZATION_NAME),
        "CURRENT_ACCOUNT_NAME": account_name(),
    }


def function_name(node: exp.Expression) -> str | None:
    """'CURRENT_ROLE' for CURRENT_ROLE(), … ; None for anything else."""
    for name, cls in _CLASSES.items():
        if cls is not None and type(node) is cls:
            return name
    if isinstance(node, exp.Anonymous) and node.name.upper() in _CLASSES and not node.expressions:
        return node.name.upper()
    return None


def literal(value: str | None) -> exp.Expression:
    return exp.Null() if value is None else exp.Literal.string(value)


def substitute(tree: exp.Expression, session: Session) -> bool:
    """Replace every session function in `tree` (in place) by its value; True when any was found."""
    known = values(session)
    found = [(node, name) for node in tree.walk() if (name := function_name(node))]
    for node, name in found:
        node.replace(literal(known[name]))
    return bool(found)


def name_projections(tree: exp.Expression) -> None:
    """Give `CURRENT_ROLE()` or `SNOWFLAKE.CORTEX.COMPLETE(…)` columns the name Snowflake shows (the
    expression's text as written), not the name of what they are rewritten to."""
    for select in list(tree.find_all(exp.Select)):
        for projection in select.expressions:
            if isinstance(projection, (exp.Alias, exp.Star)) or isinstance(projection, exp.Column):
                continue
            if any(function_name(n) or cortex_call(n) for n in projection.walk()):
                projection.replace(exp.alias_(projection.copy(), projection.sql(dialect="snowflake"), quoted=True))
