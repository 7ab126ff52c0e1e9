"""`manage.py accounts`: the organization's account registry from a shell on the server, for scripted
set-ups; the same functions as CREATE ACCOUNT / DROP ACCOUNT / SHOW ACCOUNTS, run as the bootstrap
administrator with ORGADMIN."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from access.session import Session
from errors import UserError
from organization import accounts
from organization.names import current


def _orgadmin() -> Session:
    return Session(user=None, role=accounts.ORGADMIN, entry_point="cli")


class Command(BaseCommand):
    help = "Register, list and drop the other accounts (deployments) of this organization."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("newkey", help="print a new random key to register on both deployments")
        sub.add_parser("list", help="this account and the registered ones")
        register = sub.add_parser("register", help="register another deployment of the organization")
        register.add_argument("name", help="ACCOUNT or ORG.ACCOUNT")
        register.add_argument("--url", required=True, help="the other deployment's address")
        register.add_argument("--key", required=True, help="the key both deployments register for each other")
        register.add_argument("--comment", default="")
        register.add_argument("--replace", action="store_true", help="update an already registered account")
        drop = sub.add_parser("drop", help="forget a registered account")
        drop.add_argument("name")

    def handle(self, *args, action, **opts):
        try:
            if action == "newkey":
                self.stdout.write(accounts.new_key())
            elif action == "list":
                self.stdout.write(f"this deployment: {current()}")
                for row in accounts.listed(_orgadmin())[1:]:
                    self.stdout.write(f"{row['organization_name']}.{row['account_name']}  {row['account_url']}  "
                                      f"key {row['key_fingerprint']}")
            elif action == "register":
                self.stdout.write(accounts.register(_orgadmin(), opts["name"], url=opts["url"], key=opts["key"],
                                                    comment=opts["comment"], or_replace=opts["replace"]))
            else:
                self.stdout.write(accounts.drop(_orgadmin(), opts["name"]))
        except UserError as exc:
            raise CommandError(exc.message) from None
