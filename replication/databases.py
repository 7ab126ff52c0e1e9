"""Database replication's statements, for a session: enabling a primary for other accounts, creating a
secondary (a replica) of another account's primary, refreshing it now or on a schedule, and listing both
(SHOW REPLICATION DATABASES). Promotion is in promotion.py, the copy itself in refresh.py.

As in Snowflake, enabling replication and creating a replica are ACCOUNTADMIN's; refreshing a replica
and setting its schedule belong to the owner of the secondary database. Every account named must be
registered here (organization/accounts.py), and the primary checks on each request that its database
replicates to the asking account.
"""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote as url_quote

from django.db import transaction

from access import history, privileges
from access.session import Session
from catalog import accountdata
from catalog.identifiers import quote, split_parts
from catalog.models import Database
from errors import UserError
from organization import accounts, peers
from organization.names import current, parse, split_object
from replication import refresh as copying
from replication.models import ReplicatedDatabase

MAX_INTERVAL_MINUTES = 11520  # Snowflake's limit for a REPLICATION_SCHEDULE: eight days
_SCHEDULE = re.compile(r"^\s*(\d+)\s+MINUTES?\s*$", re.IGNORECASE)


def _require_accountadmin(session: Session, action: str) -> None:
    if not privileges.has_any_role(session, privileges.ACCOUNTADMIN):
        raise UserError(f"Insufficient privileges to {action}: only the ACCOUNTADMIN role can (USE ROLE ACCOUNTADMIN).",
                        code=privileges.INSUFFICIENT_PRIVILEGES, sqlstate="42501")


def usable_database(session: Session, text: str) -> Database:
    (name,) = split_parts(text)
    database = Database.objects.filter(name=name).first()
    if database is None or not privileges.has_privilege(session, "USAGE", "DATABASE", privileges.key(name)):
        raise accountdata.database_not_found(name, refused=database is not None)
    return database


def _secondary(session: Session, text: str, action: str) -> ReplicatedDatabase:
    """A secondary database the session's role owns."""
    database = usable_database(session, text)
    privileges.require_ownership(session, "DATABASE", privileges.key(database.name), display=quote(database.name))
    replication = ReplicatedDatabase.objects.filter(database=database, is_primary=False).first()
    if replication is None:
        raise UserError(f"Database {quote(database.name)} is not a secondary database, so it cannot be {action}. "
                        "A secondary is created with CREATE DATABASE … AS REPLICA OF <organization>.<account>.<database>.",
                        code=3035, sqlstate="55000")
    return replication


def enable(session: Session, text: str, names: list[str], *, failover: bool = False) -> str:
    """ENABLE REPLICATION (or FAILOVER, for accounts it already replicates to) TO ACCOUNTS …"""
    what = "failover" if failover else "replication"
    with history.recorded(session, "ALTER DATABASE", "DATABASE", text[:767]):
        _require_accountadmin(session, f"enable {what}")
        database = usable_database(session, text)
        reason = privileges.read_only_reason(database.name)
        if reason is not None:
            raise UserError(f"{reason}: only a primary database can be replicated.", code=3035, sqlstate="55000")
        locators = [accounts.registered(parse(n)).locator for n in names]
        with transaction.atomic():
            replication, _ = ReplicatedDatabase.objects.get_or_create(database=database)
            if failover:
                missing = [a for a in locators if a not in replication.allowed_accounts]
                if missing:
                    raise UserError(f"Database {quote(database.name)} does not replicate to account {missing[0]}: "
                                    f"ALTER DATABASE {quote(database.name)} ENABLE REPLICATION TO ACCOUNTS {missing[0]} "
                                    "first.", code=3035, sqlstate="55000")
                replication.failover_accounts = sorted(set(replication.failover_accounts) | set(locators))
            else:
                replication.allowed_accounts = sorted(set(replication.allowed_accounts) | set(locators))
            replication.save(update_fields=["allowed_accounts", "failover_accounts"])
        return "Statement executed successfully."


def disable(session: Session, text: str, names: list[str] | None, *, failover: bool = False) -> str:
    """DISABLE REPLICATION (which also ends failover) or DISABLE FAILOVER [TO ACCOUNTS …]; all when no accounts."""
    what = "failover" if failover else "replication"
    with history.recorded(session, "ALTER DATABASE", "DATABASE", text[:767]):
        _require_accountadmin(session, f"disable {what}")
        database = usable_database(session, text)
        replication = ReplicatedDatabase.objects.filter(database=database, is_primary=True).first()
        if replication is not None:
            removed = None if names is None else {str(parse(n)) for n in names}

            def kept(listed: list[str]) -> list[str]:
                return [] if removed is None else [a for a in listed if a not in removed]

            replication.failover_accounts = kept(replication.failover_accounts)
            if not failover:
                replication.allowed_accounts = kept(replication.allowed_accounts)
            replication.save(update_fields=["allowed_accounts", "failover_accounts"])
        return "Statement executed successfully."


def create_replica(session: Session, text: str, primary_text: str, *, if_not_exists: bool = False) -> str:
    """CREATE DATABASE d AS REPLICA OF org.acct.d: an empty secondary, filled by its first REFRESH (as in
    Snowflake). The primary must already replicate to this account: it is asked, and its refusal passed on."""
    with history.recorded(session, "CREATE DATABASE", "DATABASE", text[:767]):
        _require_accountadmin(session, "create a secondary database")
        (name,) = split_parts(text)
        primary_name, (primary_database,) = split_object(primary_text, 1, what="primary database")
        if primary_name == current():
            raise UserError(f"'{primary_text}' is a database of this account: a replica is made of another "
                            "account's database.", code=3035, sqlstate="55000")
        if Database.objects.filter(name=name).exists():
            if if_not_exists:
                return f"{quote(name)} already exists, statement succeeded."
            raise UserError(f"SQL compilation error: Object '{quote(name)}' already exists.", code=2002, sqlstate="42710")
        primary = accounts.registered(primary_name)
        # Fails with the primary's own refusal when it does not replicate to this account.
        peers.get_json(primary, f"replication/databases/{url_quote(primary_database, safe='')}")
        with transaction.atomic():
            database = accountdata.create_database(quote(name), session.role or privileges.ACCOUNTADMIN)
            ReplicatedDatabase.objects.create(database=database, is_primary=False, primary_account=primary.locator,
                                              primary_database=primary_database)
        return (f"Database {quote(name)} successfully created as a replica of {primary.locator}.{quote(primary_database)}. "
                f"ALTER DATABASE {quote(name)} REFRESH copies its tables and models.")


def refresh(session: Session, text: str) -> str:
    with history.recorded(session, "ALTER DATABASE", "DATABASE", text[:767]):
        replication = _secondary(session, text, "refreshed")
        return copying.refresh(replication).summary()


def set_schedule(session: Session, text: str, schedule: str | None) -> str:
    """REPLICATION_SCHEDULE = '<n> MINUTE': the workers refresh the secondary every n minutes (their
    maintenance step, replication/refresh.refresh_due). None unsets it."""
    with history.recorded(session, "ALTER DATABASE", "DATABASE", text[:767]):
        replication = _secondary(session, text, "refreshed on a schedule")
        minutes = None
        if schedule is not None:
            match = _SCHEDULE.match(schedule)
            if match is None:
                raise UserError(f"Invalid REPLICATION_SCHEDULE '{schedule}': give an interval in minutes, such as "
                                "'10 MINUTE' (a USING CRON schedule is not supported here).", code=1008,
                                sqlstate="22023", field="REPLICATION_SCHEDULE")
            minutes = int(match.group(1))
            if not 1 <= minutes <= MAX_INTERVAL_MINUTES:
                raise UserError(f"Invalid REPLICATION_SCHEDULE '{schedule}': the interval must be between 1 and "
                                f"{MAX_INTERVAL_MINUTES} minutes.", code=1008, sqlstate="22023",
                                field="REPLICATION_SCHEDULE")
        replication.refresh_interval_minutes = minutes
        replication.save(update_fields=["refresh_interval_minutes"])
        return "Statement executed successfully."


def _next_refresh(replication: ReplicatedDatabase):
    if replication.is_primary or not replication.refresh_interval_minutes:
        return None
    last = replication.last_refresh_started_on or replication.created_on
    return last + timedelta(minutes=replication.refresh_interval_minutes)


def shown(session: Session) -> list[dict[str, object]]:
    """SHOW REPLICATION DATABASES: the primaries of this account that replicate somewhere and its
    secondaries, those the role may use, in Snowflake's columns and then this studio's refresh columns."""
    me = current()
    rows = []
    for replication in ReplicatedDatabase.objects.select_related("database"):
        database = replication.database
        if replication.is_primary and not replication.allowed_accounts:
            continue
        if not privileges.has_privilege(session, "USAGE", "DATABASE", privileges.key(database.name)):
            continue
        primary = f"{me}.{database.name}" if replication.is_primary else replication.primary_locator
        rows.append({
            "region_group": None, "snowflake_region": None, "created_on": database.created_on,
            "account_name": me.name, "name": database.name, "comment": database.comment or None,
            "is_primary": replication.is_primary, "primary": primary,
            "replication_allowed_to_accounts": ", ".join(replication.allowed_accounts) if replication.is_primary else None,
            "failover_allowed_to_accounts": ", ".join(replication.failover_accounts) if replication.is_primary else None,
            "organization_name": me.organization, "account_locator": me.name,
            "replication_schedule": replication.schedule,
            "last_refreshed_on": replication.last_refreshed_on,
            "next_scheduled_refresh": _next_refresh(replication),
            "last_refresh_error": replication.last_refresh_error or None,
        })
    return rows

