"""Runs statements in Snowflake's dialect against a session.

The executor parses, then hands each statement to the first module of STATEMENT_MODULES that
handles it (see sqlengine/statements/__init__.py). The `sql` command, the SQL API and the
worksheet page all run statements through here.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

from sqlglot import exp

from access.session import Session
from sqlengine.parsing import parse
from sqlengine.results import Result
from studio.errors import compilation_error

STATEMENT_MODULES = (
    "sqlengine.statements.session",  # USE …
    "sqlengine.statements.catalog",  # CREATE / DROP / INSERT / SHOW / DESCRIBE
    "sqlengine.statements.loading",  # PUT, COPY INTO, stages
    "sqlengine.statements.users",  # CREATE / ALTER / DROP USER, SHOW USERS, DESCRIBE USER
    "sqlengine.statements.grants",  # GRANT / REVOKE / SHOW GRANTS
    "sqlengine.statements.queries",  # SELECT, with the Cortex functions
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in STATEMENT_MODULES]


class Executor:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.modules = _modules()

    def execute(self, sql: str) -> list[Result]:
        return list(self.execute_each(sql))

    def execute_each(self, sql: str) -> Iterator[Result]:
        """Run the statements in order, yielding each result as soon as it exists."""
        for statement in parse(sql):
            yield self.run(statement)

    def run(self, statement: exp.Expression) -> Result:
        for module in self.modules:
            if module.handles(statement):
                return module.run(self, statement)
        raise compilation_error(f"statement '{statement.sql(dialect='snowflake')[:80]}' is not supported.")
