from __future__ import annotations

from django.db import models


class ReplicatedDatabase(models.Model):
    """A database's part in replication. As the primary: the accounts it may be replicated to
    (ALTER DATABASE d ENABLE REPLICATION TO ACCOUNTS …). As a secondary (CREATE DATABASE d AS REPLICA OF
    org.acct.d): where it is replicated from, what the last refresh copied and when the next one is due.

    Accounts are kept by locator (ORG.ACCT), not as foreign keys: dropping an account's registration must
    not drop a replica, only stop its refreshes with the "not registered" error until it is registered again."""

    database = models.OneToOneField("catalog.Database", on_delete=models.CASCADE, related_name="replication")
    is_primary = models.BooleanField(default=True)
    allowed_accounts = models.JSONField(default=list, blank=True, help_text="locators the primary replicates to")
    # Of those, the accounts whose secondary may be promoted (ALTER DATABASE d ENABLE FAILOVER TO ACCOUNTS …):
    # promoting one makes this primary a secondary of it, so it is allowed as a separate decision.
    failover_accounts = models.JSONField(default=list, blank=True, help_text="locators allowed to fail over")
    primary_account = models.CharField(max_length=511, blank=True, help_text="a secondary's primary: ORG.ACCT")
    primary_database = models.CharField(max_length=255, blank=True)
    refresh_interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    # What the secondary holds, as the primary's manifest described it: table -> fingerprint and file
    # checksum, model -> adapter version, so that a refresh copies only what changed.
    state = models.JSONField(default=dict, blank=True)
    last_refresh_started_on = models.DateTimeField(null=True, blank=True)
    last_refreshed_on = models.DateTimeField(null=True, blank=True)
    last_refresh_error = models.TextField(blank=True)
    # When ALTER DATABASE … PRIMARY last made this database the primary: a request to demote it that was
    # signed before then is a replay of an older failover, not a new one.
    primary_since = models.DateTimeField(null=True, blank=True)
    # A promotion the former primary has not yet been told of (it was unreachable).
    demotion_pending = models.CharField(max_length=511, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["database__name"]

    def __str__(self) -> str:
        if self.is_primary:
            return f"{self.database.name} (primary)"
        return f"{self.database.name} (replica of {self.primary_account}.{self.primary_database})"

    @property
    def schedule(self) -> str | None:
        """The REPLICATION_SCHEDULE as it was set ('10 MINUTE'), or None."""
        return f"{self.refresh_interval_minutes} MINUTE" if self.refresh_interval_minutes else None

    @property
    def primary_locator(self) -> str:
        return f"{self.primary_account}.{self.primary_database}"
