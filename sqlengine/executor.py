"""Runs statements in Snowflake's dialect against a session.

The executor parses, then hands each statement to the first module of STATEMENT_MODULES that
handles it (see sqlengine/statements/__init__.py). The `sql` command, the SQL API and the
worksheet page all run statements through here.
"""
from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Iterator
from types import ModuleType

from sqlglot import exp

from access.session import Session
from errors import UserError, compilation_error
from sqlengine.parsing import parse, too_deep
from sqlengine.results import Result

log = logging.getLogger(__name__)

STATEMENT_MODULES = (
    "sqlengine.statements.session",  # USE …, BEGIN / COMMIT / ROLLBACK
    "sqlengine.statements.sharing",  # shares, CREATE DATABASE … FROM SHARE: before catalog and grants
    "sqlengine.statements.replication",  # … AS REPLICA OF, ALTER DATABASE … REFRESH: before catalog
    "sqlengine.statements.catalog",  # CREATE / DROP / INSERT / SHOW / DESCRIBE
    "sqlengine.statements.loading",  # PUT, COPY INTO, stages
    "sqlengine.statements.users",  # CREATE / ALTER / DROP USER, SHOW USERS, DESCRIBE USER
    "sqlengine.statements.organization",  # CREATE / DROP ACCOUNT, SHOW ACCOUNTS
    "sqlengine.statements.grants",  # GRANT / REVOKE / SHOW GRANTS
    "sqlengine.statements.queries",  # SELECT, with the Cortex functions
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in STATEMENT_MODULES]


class Executor:
    """Runs a session's statements. `local_files` lets PUT and GET read and write this machine's files:
    only `manage.py sql`, run by someone with a shell on the server, says so."""

    def __init__(self, session: Session, *, local_files: bool = False) -> None:
        self.session = session
        self.local_files = local_files
        self.modules = _modules()

    def execute(self, sql: str) -> list[Result]:
        return list(self.execute_each(sql))

    def execute_each(self, sql: str) -> Iterator[Result]:
        """Run the statements in order, yielding each result as soon as it exists."""
        for statement in parse(sql):
            yield self.run(statement)

    def run(self, statement: exp.Expression) -> Result:
        try:
            for module in self.modules:
                if module.handles(statement):
                    return module.run(self, statement)
        except UserError:
            raise
        except RecursionError:
            raise too_deep() from None
        except Exception as exc:
            raise internal_error(exc) from exc
        raise compilation_error(f"statement '{statement.sql(dialect='snowflake')[:80]}' is not supported.")


def internal_error(exc: BaseException) -> UserError:
    """A bug of ours still ends as an error every entry point shows; what went wrong (which may name
    files or values) goes to the server's log, under an incident id the user can quote."""
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s", incident, exc_info=exc)
    return UserError(f"Internal error while running the statement (incident {incident}); the details are in "
                       "the server's log.", code=300002, sqlstate="XX000")
