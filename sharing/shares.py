"""Outbound shares: CREATE / DROP / ALTER SHARE, GRANT / REVOKE USAGE … TO | FROM SHARE, SHOW SHARES and
DESCRIBE SHARE, with Snowflake's rules for who may.

- CREATE SHARE is ACCOUNTADMIN's (Snowflake grants the CREATE SHARE privilege to no other role by default);
  the creating role owns the share, and only its owner (or ACCOUNTADMIN) alters, grants to or drops it.
- An object goes into a share only from a role that owns it, and in order: the database first, then a
  schema of it, then a model of that schema, since a consumer reaches a model through both.
- Only accounts registered by an ORGADMIN (organization/accounts.py) can be added: the share's objects are
  later fetched by that account over the signed federation API, which refuses anyone else.
"""
from __future__ import annotations

from django.db import IntegrityError, transaction

from access import history, privileges
from access.session import Session
from catalog.identifiers import normalize, qualify, split_parts
from catalog.models import Database, Schema
from errors import UserError, compilation_error
from models_registry.models import FineTunedModel
from organization import accounts
from organization.names import current, parse
from sharing.models import Share, ShareConsumer, SharedObject

SHAREABLE = ("DATABASE", "SCHEMA", "MODEL")


def _not_found(name: str) -> UserError:
    return compilation_error(f"Share '{name}' does not exist or not authorized.")


def _manages(session: Session, share: Share) -> bool:
    roles = privileges.session_roles(session)
    return privileges.ACCOUNTADMIN in roles or share.owner_role in roles


def get_managed(session: Session, text: str) -> Share:
    """The share named `text` when the session's roles own it; the same not-found error otherwise."""
    share = Share.objects.filter(name=normalize(text)).first()
    if share is None or not _manages(session, share):
        raise _not_found(normalize(text))
    return share


def create(session: Session, text: str, *, comment: str = "", or_replace: bool = False,
           if_not_exists: bool = False) -> str:
    name = normalize(text)
    with history.recorded(session, "CREATE SHARE", "SHARE", name):
        if not privileges.has_any_role(session, privileges.ACCOUNTADMIN):
            raise UserError("Insufficient privileges to operate on account: CREATE SHARE is ACCOUNTADMIN's.",
                            code=privileges.INSUFFICIENT_PRIVILEGES, sqlstate="42501")
        with transaction.atomic():
            existing = Share.objects.select_for_update().filter(name=name).first()
            if existing is not None:
                if if_not_exists:
                    return f"{name} already exists, statement succeeded."
                if not or_replace:
                    raise UserError(f"SQL compilation error: Object '{name}' already exists.", code=2002,
                                    sqlstate="42710")
                existing.delete()
            Share.objects.create(name=name, owner_role=session.role or "ACCOUNTADMIN", comment=comment)
        return f"Share {name} successfully created."


def drop(session: Session, text: str, *, if_exists: bool = False) -> str:
    name = normalize(text)
    with history.recorded(session, "DROP SHARE", "SHARE", name):
        share = Share.objects.filter(name=name).first()
        if share is None and if_exists:
            return "Statement executed successfully."
        get_managed(session, text).delete()
        return f"{name} successfully dropped."


def _resolve(session: Session, object_type: str, text: str) -> tuple[str, list[str]]:
    """The stored key and parts of the object, which must exist; resolved by the one name resolver."""
    if object_type == "DATABASE":
        parts = split_parts(text)
        if len(parts) != 1:
            raise compilation_error(f"Invalid database name '{text}'.")
        exists = Database.objects.filter(name=parts[0]).exists()
    elif object_type == "SCHEMA":
        parts = split_parts(text)
        if len(parts) == 1:
            if not session.database:
                raise compilation_error(f"Cannot resolve schema '{text}': this session has no current database.")
            parts = [session.database, parts[0]]
        if len(parts) != 2:
            raise compilation_error(f"Invalid schema name '{text}': expected <database>.<schema>.")
        exists = Schema.objects.filter(database__name=parts[0], name=parts[1]).exists()
    else:
        qualified = qualify(text, session.database, session.schema, what="model")
        parts = [qualified.database, qualified.schema, qualified.name]
        exists = FineTunedModel.objects.filter(schema__database__name=parts[0], schema__name=parts[1],
                                               name=parts[2]).exists()
    key = privileges.key(*parts)
    if exists and privileges.imported_database(parts[0]):
        raise compilation_error(f"Database {privileges.key(parts[0])} was created from a share: what another "
                                "account shared cannot be shared again.")
    if not exists:
        raise compilation_error(f"{object_type.title()} '{key}' does not exist or not authorized.")
    return key, parts


def _granted(share: Share, object_type: str, *parts: str) -> bool:
    return share.objects_granted.filter(object_type=object_type, object_name=privileges.key(*parts)).exists()


def grant(session: Session, privilege: str, object_type: str, text: str, share_text: str) -> str:
    object_type = object_type.upper()
    with history.recorded(session, "GRANT", object_type, text[:767]):
        if object_type not in SHAREABLE or privilege.upper() != "USAGE":
            raise compilation_error(f"{privilege.upper()} on {object_type} cannot be granted to a share: a share "
                                    "takes USAGE on a DATABASE, a SCHEMA or a MODEL.")
        share = get_managed(session, share_text)
        key, parts = _resolve(session, object_type, text)
        privileges.require_ownership(session, object_type, key, display=key)
        if object_type != "DATABASE" and not _granted(share, "DATABASE", parts[0]):
            raise compilation_error(f"Grant USAGE on database {privileges.key(parts[0])} to share {share.name} "
                                    f"before granting objects inside it.")
        if object_type == "MODEL" and not _granted(share, "SCHEMA", parts[0], parts[1]):
            raise compilation_error(f"Grant USAGE on schema {privileges.key(parts[0], parts[1])} to share "
                                    f"{share.name} before granting models inside it.")
        try:
            SharedObject.objects.create(share=share, object_type=object_type, object_name=key,
                                        granted_by=session.role or "")
        except IntegrityError:
            pass  # granting twice is not an error in Snowflake either
        return "Statement executed successfully."


def revoke(session: Session, privilege: str, object_type: str, text: str, share_text: str) -> str:
    """Revoking a database or schema revokes what is inside it from the share too: the consumer could not
    reach it any more."""
    object_type = object_type.upper()
    with history.recorded(session, "REVOKE", object_type, text[:767]):
        share = get_managed(session, share_text)
        if object_type not in SHAREABLE or privilege.upper() != "USAGE":
            raise compilation_error(f"{privilege.upper()} on {object_type} is not granted to shares.")
        parts = split_parts(text) if object_type == "DATABASE" else _resolve_any(session, object_type, text)
        key = privileges.key(*parts)
        with transaction.atomic():
            share.objects_granted.filter(object_type=object_type, object_name=key).delete()
            for inner in share.objects_granted.exclude(object_type=object_type):
                inner_parts = split_parts(inner.object_name)
                if len(inner_parts) > len(parts) and inner_parts[:len(parts)] == parts:
                    inner.delete()
        return "Statement executed successfully."


def _resolve_any(session: Session, object_type: str, text: str) -> list[str]:
    """A name to revoke resolves as to grant, but the object need not exist any more."""
    try:
        return _resolve(session, object_type, text)[1]
    except UserError:
        parts = split_parts(text)
        if object_type == "SCHEMA" and len(parts) == 1 and session.database:
            return [session.database, *parts]
        if object_type == "MODEL":
            q = qualify(text, session.database, session.schema, what="model")
            return [q.database, q.schema, q.name]
        return parts


def alter_accounts(session: Session, text: str, action: str, names: list[str]) -> str:
    """ADD, REMOVE or SET the accounts of a share; each added one must be registered in this deployment."""
    with history.recorded(session, f"ALTER SHARE {action}", "SHARE", normalize(text)):
        share = get_managed(session, text)
        targets = [accounts.registered(parse(n)) if action != "REMOVE" else None for n in names]
        with transaction.atomic():
            if action == "SET":
                share.consumers.all().delete()
            if action == "REMOVE":
                for n in names:
                    name = parse(n)
                    share.consumers.filter(account__organization=name.organization, account__name=name.name).delete()
            else:
                for account in targets:
                    ShareConsumer.objects.get_or_create(share=share, account=account)
        return "Statement executed successfully."


def shown(session: Session, like=None) -> list[dict[str, object]]:
    """SHOW SHARES: the outbound shares the session's roles own, in Snowflake's columns."""
    rows = []
    me = current()
    for share in Share.objects.prefetch_related("consumers__account", "objects_granted"):
        if not _manages(session, share):
            continue
        database = next((o.object_name for o in share.objects_granted.all() if o.object_type == "DATABASE"), "")
        rows.append({"created_on": share.created_on, "kind": "OUTBOUND", "owner_account": str(me),
                     "name": share.name, "database_name": database,
                     "to": ",".join(sorted(c.account.locator for c in share.consumers.all())),
                     "owner": share.owner_role, "comment": share.comment, "listing_global_name": ""})
    return rows


def described(session: Session, text: str) -> list[dict[str, object]]:
    """DESCRIBE SHARE: kind, name and shared_on of each object granted to it."""
    share = get_managed(session, text)
    return [{"kind": o.object_type, "name": o.object_name, "shared_on": o.granted_on}
            for o in share.objects_granted.all()]
