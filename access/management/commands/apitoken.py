from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from access import tokens
from access.models import ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke API tokens for the SQL API (Authorization: Bearer <token>)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print its secret (shown only this once)")
        create.add_argument("username")
        create.add_argument("name", help="what the token is for, e.g. 'airflow'")
        listing = sub.add_parser("list", help="list tokens (of one user)")
        listing.add_argument("username", nargs="?")
        revoke = sub.add_parser("revoke", help="revoke a token by id or by the start of its prefix")
        revoke.add_argument("token", help="id, or prefix as `list` shows it (sft_…)")

    def handle(self, *args, action, **opts):
        getattr(self, f"_{action}")(**opts)

    def _create(self, username, name, **opts):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"User '{username}' does not exist.")
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive.")
        token, secret = tokens.create_token(user, name)
        self.stdout.write(secret)
        self.stderr.write(f"Token {token.pk} '{name}' for {username}. Store the secret now: it is not shown again.")

    def _list(self, username=None, **opts):
        found = ApiToken.objects.select_related("user").order_by("pk")
        if username:
            if not get_user_model().objects.filter(username=username).exists():
                raise CommandError(f"User '{username}' does not exist.")
            found = found.filter(user__username=username)
        rows = [("ID", "USER", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS")]
        for token in found:
            rows.append((str(token.pk), token.user.get_username(), token.name, token.prefix + "…",
                         f"{token.created_on:%Y-%m-%d %H:%M}",
                         f"{token.last_used_on:%Y-%m-%d %H:%M}" if token.last_used_on else "never",
                         f"revoked {token.revoked_on:%Y-%m-%d %H:%M}" if token.revoked_on else "active"))
        if len(rows) == 1:
            self.stdout.write("No API tokens.")
            return
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    def _revoke(self, token, **opts):
        value = token.strip().rstrip("…")
        if value.isdigit():
            matches = list(ApiToken.objects.filter(pk=int(value)))
        elif len(value) >= len(tokens.PREFIX) + 2:
            matches = list(ApiToken.objects.filter(prefix__startswith=value[:12]))
        else:
            raise CommandError(f"Give a token id or at least {len(tokens.PREFIX) + 2} characters of its prefix.")
        if not matches:
            raise CommandError(f"No API token '{value}'.")
        if len(matches) > 1:
            raise CommandError(f"'{value}' matches {len(matches)} tokens; give the id instead.")
        found = matches[0]
        if found.revoked_on:
            self.stdout.write(f"Token {found.pk} '{found.name}' was already revoked.")
            return
        tokens.revoke(found)
        self.stdout.write(f"Revoked token {found.pk} '{found.name}' of {found.user.get_username()}.")
