from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from access.bootstrap import bootstrap, password_file


class Command(BaseCommand):
    help = "Create the system roles, the administrator (ACCOUNTADMIN), COMPUTE_WH and the DEMO database. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=settings.ADMIN_USER)
        parser.add_argument("--password", default=settings.ADMIN_PASSWORD or None,
                            help="default: generated once and kept in var/admin-password.txt")
        parser.add_argument("--no-demo", action="store_true", help="skip the DEMO database")

    def handle(self, *args, username, password, no_demo=False, **opts):
        login = bootstrap(username, password, demo=not no_demo)
        if login.password:
            self.stdout.write(f"Administrator: {login.username} / {login.password} (saved in {password_file()})")
        else:
            self.stdout.write(f"Administrator {login.username} already exists; its password is in {password_file()}")
