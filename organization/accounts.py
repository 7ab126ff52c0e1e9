"""The organization's account registry: ORGADMIN registers the other deployments this one trusts.

Registration is a statement, `CREATE ACCOUNT <name> URL = '…' KEY = '…'`, rather than only a management
command, because who may register is a privilege question like any other (the ORGADMIN role, as in
Snowflake) and the access history should show it; the key is redacted from every statement text kept.
`manage.py accounts` calls the same functions for scripted set-ups, as a shell on the server may.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from access import history, privileges
from access.session import Session
from errors import UserError
from organization.models import Account
from organization.names import AccountName, current, parse

ORGADMIN = "ORGADMIN"
MIN_KEY_LENGTH = 32


def require_orgadmin(session: Session, action: str) -> None:
    if not privileges.has_any_role(session, ORGADMIN):
        raise UserError(f"Insufficient privileges to {action}: only the ORGADMIN role manages the organization's "
                        "accounts (USE ROLE ORGADMIN).", code=privileges.INSUFFICIENT_PRIVILEGES, sqlstate="42501")


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"Invalid URL '{url}' for the account: give the deployment's address, such as "
                        "'https://studio-eu.example.com/'.", code=100357, sqlstate="22023", field="url")
    return url.strip().rstrip("/") + "/"


def _check_key(key: str) -> str:
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(f"The account's KEY must be at least {MIN_KEY_LENGTH} characters: both deployments sign "
                        "their requests with it. Generate one with `python manage.py accounts newkey`.",
                        code=100357, sqlstate="22023", field="key")
    return key


def register(session: Session, text: str, *, url: str, key: str, comment: str = "", or_replace: bool = False,
             if_not_exists: bool = False) -> str:
    with history.recorded(session, "CREATE ACCOUNT", "ACCOUNT", text[:767]):
        require_orgadmin(session, "register an account")
        name = parse(text)
        if name == current():
            raise UserError(f"Account '{name}' is this deployment: register the other accounts of the organization.",
                            code=2003, sqlstate="42710", field="name")
        url, key = _check_url(url), _check_key(key)
        fields = {"url": url, "key": key, "comment": comment, "created_by": session.user_name}
        try:
            with transaction.atomic():
                if or_replace:
                    Account.objects.update_or_create(organization=name.organization, name=name.name, defaults=fields)
                    return f"Account {name.name} successfully created."
                Account.objects.create(organization=name.organization, name=name.name, **fields)
        except IntegrityError:
            if if_not_exists:
                return f"{name.name} already exists, statement succeeded."
            raise UserError(f"Object '{name.name}' already exists.", code=2002, sqlstate="42710") from None
        return f"Account {name.name} successfully created."


def drop(session: Session, text: str, *, if_exists: bool = False) -> str:
    with history.recorded(session, "DROP ACCOUNT", "ACCOUNT", text[:767]):
        require_orgadmin(session, "drop an account")
        name = parse(text)
        deleted, _ = Account.objects.filter(organization=name.organization, name=name.name).delete()
        if not deleted and not if_exists:
            raise not_registered(name)
        return f"{name.name} successfully dropped." if deleted else "Statement executed successfully."


def not_registered(name: AccountName) -> UserError:
    return UserError(f"Account '{name}' does not exist or is not registered in this deployment: an ORGADMIN "
                     "registers it with CREATE ACCOUNT … URL = '…' KEY = '…' (on both deployments).",
                     code=2003, sqlstate="02000")


def registered(name: AccountName) -> Account:
    """The registered account, or the error every statement naming an unknown account gives."""
    account = Account.objects.filter(organization=name.organization, name=name.name).first()
    if account is None:
        raise not_registered(name)
    return account


def listed(session: Session) -> list[dict[str, object]]:
    """SHOW ACCOUNTS: this account first, then the registered ones."""
    require_orgadmin(session, "list the organization's accounts")
    me = current()
    rows: list[dict[str, object]] = [{
        "organization_name": me.organization, "account_name": me.name, "account_url": None, "created_on": None,
        "comment": "this deployment", "is_current": True, "key_fingerprint": None}]
    for account in Account.objects.all():
        rows.append({"organization_name": account.organization, "account_name": account.name,
                     "account_url": account.url, "created_on": account.created_on, "comment": account.comment,
                     "is_current": False, "key_fingerprint": account.key_fingerprint})
    return rows
