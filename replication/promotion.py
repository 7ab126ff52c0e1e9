"""ALTER DATABASE d PRIMARY: a secondary database becomes the primary (failover), and its former
primary becomes a secondary of it, as in Snowflake.

The promoted database is writable at once and replicates to the former primary's account. The former
primary is told over the federation API (a signed POST, the one request between deployments that
changes anything; see organization/signing.py). Failover is for when that account may be down: then
the promotion still happens, the former primary is not told, and the answer says so; the same statement
run again tells it once it is back, and SHOW REPLICATION DATABASES shows it meanwhile.
"""
from __future__ import annotations

from urllib.parse import quote as url_quote

from django.db import transaction
from django.utils import timezone

from access import history, privileges
from access.session import Session
from catalog.identifiers import quote
from errors import UserError
from organization import accounts, peers
from organization.models import Account
from organization.names import current, split_object
from replication import snapshot
from replication.databases import usable_database
from replication.models import ReplicatedDatabase


def promote(session: Session, text: str) -> str:
    with history.recorded(session, "ALTER DATABASE", "DATABASE", text[:767]):
        database = usable_database(session, text)
        privileges.require_ownership(session, "DATABASE", privileges.key(database.name), display=quote(database.name))
        replication = ReplicatedDatabase.objects.filter(database=database).first()
        if replication is None or (replication.is_primary and not replication.demotion_pending):
            raise UserError(f"Database {quote(database.name)} is already a primary database.", code=3035,
                            sqlstate="55000")
        if not replication.is_primary:
            former = replication.primary_locator
            if not (replication.state or {}).get("failover_allowed"):
                raise UserError(f"Database {quote(database.name)} cannot be promoted: its primary, {former}, does not "
                                f"allow failover to account {current()} (as of the last refresh). On "
                                f"{replication.primary_account}: ALTER DATABASE {quote(replication.primary_database)} "
                                f"ENABLE FAILOVER TO ACCOUNTS {current()}; then ALTER DATABASE {quote(database.name)} "
                                "REFRESH here.", code=3035, sqlstate="55000", refused=True)
            with transaction.atomic():
                replication.is_primary = True
                replication.primary_since = timezone.now()
                # The former primary may follow it, and fail back, as this one could.
                replication.allowed_accounts = [replication.primary_account]
                replication.failover_accounts = [replication.primary_account]
                replication.demotion_pending = former
                replication.refresh_interval_minutes = None
                replication.primary_account = replication.primary_database = ""
                replication.save()
        return _tell_former_primary(replication)


def _tell_former_primary(replication: ReplicatedDatabase) -> str:
    name = quote(replication.database.name)
    account_name, (former_database,) = split_object(replication.demotion_pending, 1, what="former primary")
    done = f"Database {name} is now the primary database."
    try:
        account = accounts.registered(account_name)
        answer = peers.post_json(account, f"replication/databases/{url_quote(former_database, safe='')}/promoted",
                                 {"database": replication.database.name})
    except UserError as exc:
        return (f"{done} Its former primary, {replication.demotion_pending}, could not be told ({exc.message}): it "
                f"stays a primary there until it is. Run ALTER DATABASE {name} PRIMARY again when it can be reached.")
    ReplicatedDatabase.objects.filter(pk=replication.pk).update(demotion_pending="")
    return f"{done} {answer.get('message', '')}".strip()


def demote(peer: Account, database: str, promoted: str, signed_at: int) -> str:
    """On the former primary: `peer` promoted its replica `promoted` of `database`, which becomes a
    secondary of it. Only an account the database replicated to may ask; asking twice changes nothing,
    and a request signed (`signed_at`, seconds) before this database last became the primary is refused."""
    replication = ReplicatedDatabase.objects.filter(database__name=database).select_related("database").first()
    if replication is not None and not replication.is_primary and replication.primary_account == peer.locator \
            and replication.primary_database == promoted:
        return f"Database {quote(database)} of account {current()} was a secondary of it already."
    primary = snapshot.primary_for(peer, database)
    if peer.locator not in replication.failover_accounts:
        raise UserError(f"Database {quote(database)} of account {current()} does not allow failover to account "
                        f"{peer.locator}; it stays the primary.", code=3035, sqlstate="55000", refused=True)
    if replication.primary_since is not None and signed_at < replication.primary_since.timestamp():
        raise UserError(f"Database {quote(database)} of account {current()} became the primary again after this "
                        "promotion was signed; it is not demoted by it. Promote the database again to fail over.",
                        code=3035, sqlstate="55000", refused=True)
    with transaction.atomic():
        ReplicatedDatabase.objects.filter(database=primary).update(
            is_primary=False, allowed_accounts=[], failover_accounts=[], primary_account=peer.locator,
            primary_database=promoted,
            # Nothing is known to be held yet: the first refresh copies everything. The promoted database
            # allows failover back to this account (promote() grants it), so a failback needs no refresh first.
            state={"failover_allowed": True}, demotion_pending="", refresh_interval_minutes=None)
    return (f"Database {quote(database)} of account {current()} is now a secondary database, a replica of "
            f"{peer.locator}.{quote(promoted)}.")

