"""Where each database on the Data page comes from, when it is not an ordinary one of this account: a
secondary (a replica of another account's primary, replication/), a primary replicated to other
accounts, or a database created from another account's share (sharing/). Read for the whole page in two
queries, not one per database."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from access import privileges
from access.session import Session
from replication.models import ReplicatedDatabase
from sharing.models import ImportedDatabase

REPLICA, PRIMARY, SHARE = "replica", "primary", "share"


@dataclass(frozen=True)
class Origin:
    kind: str  # REPLICA, PRIMARY or SHARE
    source: str  # a replica's primary (ORG.ACCT.DB), a primary's accounts, a share (ORG.ACCT.SHARE)
    # What privileges.read_only_reason refuses writes in: a secondary and a database from a share.
    read_only: bool
    last_refreshed_on: datetime | None = None
    schedule: str | None = None
    last_refresh_error: str = ""
    # Whether to offer "Refresh now": the replica's owner (as the service's check counts it, ACCOUNTADMIN
    # included). Only what the page offers: replication.databases.refresh decides.
    may_refresh: bool = False
    # A promoted primary whose former primary was unreachable and has not been told yet.
    demotion_pending: str = ""


def origins(session: Session, names: list[str]) -> dict[str, Origin]:
    """The non-ordinary databases among `names` (those the page lists), by name."""
    found: dict[str, Origin] = {}
    held = None
    for replication in ReplicatedDatabase.objects.filter(database__name__in=names).select_related("database"):
        database = replication.database
        if replication.is_primary:
            # As SHOW REPLICATION DATABASES: a primary replicating nowhere is an ordinary database.
            if replication.allowed_accounts or replication.demotion_pending:
                found[database.name] = Origin(PRIMARY, ", ".join(replication.allowed_accounts), read_only=False,
                                              demotion_pending=replication.demotion_pending)
            continue
        held = held or privileges.Held(session)
        found[database.name] = Origin(
            REPLICA, replication.primary_locator, read_only=True, last_refreshed_on=replication.last_refreshed_on,
            schedule=replication.schedule, last_refresh_error=replication.last_refresh_error,
            may_refresh=held.has("OWNERSHIP", "DATABASE", privileges.key(database.name), database.owner_role))
    for imported in ImportedDatabase.objects.filter(database__name__in=names).select_related("database", "provider"):
        found[imported.database.name] = Origin(SHARE, f"{imported.provider.locator}.{imported.share_name}",
                                               read_only=True)
    return found
