"""Sessions of Snowflake's clients, and their sign-in attempts.

A session is what `snowflake.connector.connect()` opens: a numeric id, a session token sent with every
request and a master token that renews it. Only the SHA-256 of each token is kept, so a copy of the
database signs nobody in. A session also holds its current role, warehouse, database and schema, which
`USE` changes for the session's next statements, in whichever web process answers them.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ClientSession(models.Model):
    id = models.BigAutoField(primary_key=True)  # the sessionId the clients are given (an integer)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_sessions")
    token_hash = models.CharField(max_length=64, unique=True)
    master_token_hash = models.CharField(max_length=64, unique=True)
    token_expires_on = models.DateTimeField()
    master_expires_on = models.DateTimeField()
    role = models.CharField(max_length=255, blank=True)
    warehouse = models.CharField(max_length=255, blank=True)
    database = models.CharField(max_length=255, blank=True)
    schema = models.CharField(max_length=255, blank=True)
    client = models.CharField(max_length=128, blank=True)  # CLIENT_APP_ID and version, as the client sent them
    # PYTHON_CONNECTOR_QUERY_RESULT_FORMAT as connect(session_parameters=…) or ALTER SESSION set it: "json",
    # "arrow", or "" for the server's CLIENT_RESULT_FORMAT.
    result_format = models.CharField(max_length=5, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    last_used_on = models.DateTimeField(default=timezone.now)
    # Set by logout, by the user's being disabled or dropped, and by an administrator: never reopened.
    closed_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "closed_on"])]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user}"

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


class LoginAttempt(models.Model):
    """One failed sign-in, kept for throttling: the login name as sent (lower-cased) and the client's address."""

    login_name = models.CharField(max_length=255)
    address = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["login_name", "at"]), models.Index(fields=["address", "at"])]
