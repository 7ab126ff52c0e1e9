from __future__ import annotations

import json
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from access.roles import open_session
from catalog.identifiers import normalize
from errors import UserError
from sqlengine.executor import Executor
from sqlengine.results import format_table, to_json


class Command(BaseCommand):
    help = "Run SQL statements in Snowflake's dialect (from -e, a file, or standard input) and print the results."

    def add_arguments(self, parser):
        parser.add_argument("-e", "--execute", help="statements to run")
        parser.add_argument("file", nargs="?", type=Path, help="a file of statements")
        parser.add_argument("--user", help="run as this user (default: the bootstrap administrator)")
        parser.add_argument("--role", default=None, help="a role granted to the user (default: their DEFAULT_ROLE)")
        parser.add_argument("--warehouse", default=None)
        parser.add_argument("--database", default=None)
        parser.add_argument("--schema", default=None)
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def handle(self, *args, execute=None, file=None, user=None, role=None, warehouse=None, database=None,
               schema=None, format="table", **opts):
        if execute is not None:
            text = execute
        elif file is not None:
            text = file.read_text()
        else:
            text = sys.stdin.read()

        def name(option: str | None) -> str | None:
            return normalize(option) if option else None

        try:
            # The options open the session as a client's sign-in would, with USE's checks: --role must be
            # granted to --user, --database and --schema must be ones that role may use.
            session = open_session(self._user(user), role=name(role), warehouse=name(warehouse),
                                   database=name(database), schema=name(schema), entry_point="cli")
            for result in Executor(session, local_files=True).execute_each(text):
                if format == "json":
                    self.stdout.write(json.dumps(to_json(result), default=str))
                else:
                    self.stdout.write(format_table(result) + "\n")
        except UserError as exc:
            raise CommandError(f"{exc.code:06d} ({exc.sqlstate}): {exc.message}") from exc

    def _user(self, name: str | None):
        User = get_user_model()
        if name:
            found = User.objects.filter(username=name).first()
            if found is None:
                raise CommandError(f"User '{name}' does not exist.")
            return found
        return User.objects.filter(is_superuser=True).order_by("pk").first()
