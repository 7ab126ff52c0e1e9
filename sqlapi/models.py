"""Statements submitted through the SQL API.

The web app runs several processes, so a statement's state and result live here, not in memory: any
process can answer a poll. The process running a statement refreshes `heartbeat_on`; a statement
whose heartbeat stops (its process died) is marked failed when someone polls it.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from errors import UserError

# A running statement's process refreshes its heartbeat this often...
HEARTBEAT_SECONDS = 10
# ...and one silent this long is taken for dead. Generous: a busy SQLite file can delay a write.
STALE_AFTER = timedelta(seconds=180)

CANCELLED_ERROR = UserError("SQL execution canceled", code=604, sqlstate="57014")


class Statement(models.Model):
    RUNNING, SUCCESS, FAILED, CANCELLED = "running", "success", "failed", "cancelled"
    STATUSES = [(s, s) for s in (RUNNING, SUCCESS, FAILED, CANCELLED)]

    handle = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sql_statements")
    # The request a statement of a multi-statement request belongs to, and its place in it.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    position = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True)
    # Which session of which entry point sent it, where one has sessions ("client-session:<id>"), so that
    # SYSTEM$CANCEL_ALL_QUERIES can find a session's statements.
    origin = models.CharField(max_length=64, blank=True)
    text = models.TextField()
    multi = models.BooleanField(default=False)  # answered with statementHandles
    status = models.CharField(max_length=16, choices=STATUSES, default=RUNNING)
    # The session it started in (a multi-statement request's USE statements change it for the next ones).
    role = models.CharField(max_length=255, blank=True)
    warehouse = models.CharField(max_length=255, blank=True)
    database = models.CharField(max_length=255, blank=True)
    schema = models.CharField(max_length=255, blank=True)
    # {"rowType": [...], "data": [[...]]}: the one partition of a successful statement.
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=16, blank=True)
    error_sqlstate = models.CharField(max_length=5, blank=True)
    error_message = models.TextField(blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    finished_on = models.DateTimeField(null=True, blank=True)
    heartbeat_on = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_on", "position"]
        indexes = [models.Index(fields=["user", "created_on"]), models.Index(fields=["status", "heartbeat_on"])]

    def __str__(self) -> str:
        return f"{self.handle} ({self.status})"

    @property
    def created_on_ms(self) -> int:
        return int(self.created_on.timestamp() * 1000)

    @property
    def is_running(self) -> bool:
        return self.status == self.RUNNING

    def _leave_running(self, **fields) -> bool:
        """Atomic: only a running statement changes state, so a cancel is never overwritten by a late
        result (and a late result never revives a cancelled statement)."""
        fields.setdefault("finished_on", timezone.now())
        changed = Statement.objects.filter(pk=self.pk, status=self.RUNNING).update(**fields) == 1
        self.refresh_from_db()
        return changed

    def succeed(self, result: dict) -> bool:
        return self._leave_running(status=self.SUCCESS, result=result)

    def fail(self, error: UserError) -> bool:
        return self._leave_running(status=self.FAILED, error_code=f"{error.code:06d}", error_sqlstate=error.sqlstate,
                                   error_message=error.message)

    def cancel(self) -> bool:
        error = CANCELLED_ERROR
        self.children.filter(status=self.RUNNING).update(
            status=self.CANCELLED, finished_on=timezone.now(), error_code=f"{error.code:06d}",
            error_sqlstate=error.sqlstate, error_message=error.message)
        return self._leave_running(status=self.CANCELLED, error_code=f"{error.code:06d}",
                                   error_sqlstate=error.sqlstate, error_message=error.message)

    def was_cancelled(self) -> bool:
        return Statement.objects.filter(pk=self.pk, status=self.CANCELLED).exists()

    def fail_if_abandoned(self, now=None) -> bool:
        """Mark failed a statement whose process stopped sending heartbeats (it died mid-statement)."""
        now = now or timezone.now()
        top = self.parent or self
        if not self.is_running or top.heartbeat_on >= now - STALE_AFTER:
            return False
        error = UserError(f"The process running this statement stopped (no heartbeat since "
                            f"{top.heartbeat_on:%Y-%m-%d %H:%M:%S} UTC); run it again.", code=630, sqlstate="57P01")
        if self.parent is None:
            for child in self.children.filter(status=self.RUNNING):
                child.fail(error)
        return self.fail(error)

    @classmethod
    def beat(cls, handles) -> None:
        cls.objects.filter(pk__in=handles, status=cls.RUNNING).update(heartbeat_on=timezone.now())

    @property
    def error(self) -> UserError | None:
        if not self.error_code:
            return None
        return UserError(self.error_message, code=int(self.error_code), sqlstate=self.error_sqlstate)
