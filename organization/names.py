"""This deployment's place in its organization, and how statements name accounts.

Snowflake names another account `org_name.account_name` in shares and replication (ALTER SHARE … ADD
ACCOUNTS = myorg.acct2, CREATE DATABASE … AS REPLICA OF myorg.acct1.db). Both parts follow the identifier
rules; an unqualified account name means one of this organization.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from catalog.identifiers import normalize, split_parts
from errors import UserError


@dataclass(frozen=True)
class AccountName:
    organization: str
    name: str

    def __str__(self) -> str:
        return f"{self.organization}.{self.name}"


def organization_name() -> str:
    return normalize(settings.ORGANIZATION_NAME)


def account_name() -> str:
    return normalize(settings.ACCOUNT_NAME)


def current() -> AccountName:
    return AccountName(organization_name(), account_name())


def parse(text: str, *, what: str = "account") -> AccountName:
    """ACCT or ORG.ACCT, normalized; another organization is refused (the registry holds one organization's
    accounts, as Snowflake's ORGADMIN manages its own)."""
    parts = split_parts(text.strip())
    if len(parts) == 1:
        return AccountName(organization_name(), parts[0])
    if len(parts) != 2:
        raise UserError(f"Invalid {what} name '{text}': name an account as <organization>.<account>, "
                        f"for example {organization_name()}.ACCT2.", code=2003, sqlstate="42601", field=what)
    if parts[0] != organization_name():
        raise UserError(f"Account '{text}' is not in this organization ({organization_name()}): only accounts of "
                        "the same organization can be registered, shared with or replicated to.",
                        code=2003, sqlstate="02000", field=what)
    return AccountName(parts[0], parts[1])


def split_object(text: str, parts_after_account: int, *, what: str) -> tuple[AccountName, list[str]]:
    """ORG.ACCT.<object…>: the account and the object's own parts (CREATE DATABASE … FROM SHARE org.acct.s)."""
    parts = split_parts(text.strip())
    if len(parts) != 2 + parts_after_account:
        example = ".".join(["<organization>", "<account>"] + ["<name>"] * parts_after_account)
        raise UserError(f"Invalid {what} '{text}': expected {example}.", code=2003, sqlstate="42601", field=what)
    return parse(f'"{parts[0]}"."{parts[1]}"'), parts[2:]
