from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog import accountdata
from catalog.identifiers import quote_always, split_parts
from catalog.models import Database, Schema
from errors import UserError


class Command(BaseCommand):
    help = "Create a table in the account's data from a CSV, JSON lines or Parquet file."

    def add_arguments(self, parser):
        parser.add_argument("table", help="database.schema.table (unquoted parts are upper-cased)")
        parser.add_argument("file", type=Path)
        parser.add_argument("--replace", action="store_true", help="replace the table if it exists")
        parser.add_argument("--create", action="store_true", help="create the database and schema if missing")

    def handle(self, *args, table, file, replace=False, create=False, **opts):
        try:
            parts = split_parts(table)
            if len(parts) != 3:
                raise CommandError(f"Name the table as database.schema.table, got '{table}'.")
            database, schema, name = parts
            if create:
                if not Database.objects.filter(name=database).exists():
                    accountdata.create_database(quote_always(database))
                if not Schema.objects.filter(database__name=database, name=schema).exists():
                    accountdata.create_schema(database, schema)
            count = accountdata.load_table(database, schema, name, file.resolve(), replace=replace)
        except UserError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Loaded {count} rows into {database}.{schema}.{name}"))
