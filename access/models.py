from __future__ import annotations

from django.conf import settings
from django.db import models

# Snowflake's system roles. Their hierarchy and the grants between them belong to the access-control
# issue; the skeleton needs the roles to exist so jobs and models record who owns them.
SYSTEM_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "PUBLIC", "ORGADMIN")
# What a Grant row names besides privileges' object types: a role, a database role, a user.
ROLE, DATABASE_ROLE, USER = "ROLE", "DATABASE ROLE", "USER"

# Privileges that GRANT accepts per object type (ALL grants each of them). OWNERSHIP is not granted
# this way: it stays with the object's owner_role.
PRIVILEGES: dict[str, tuple[str, ...]] = {
    "DATABASE": ("USAGE", "MONITOR", "MODIFY", "CREATE SCHEMA", "CREATE DATABASE ROLE"),
    "SCHEMA": ("USAGE", "MONITOR", "MODIFY", "CREATE TABLE", "CREATE VIEW", "CREATE STAGE", "CREATE MODEL"),
    "TABLE": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"),
    "VIEW": ("SELECT", "REFERENCES"),
    "MODEL": ("USAGE",),
    # Internal stages: READ (LIST, GET, COPY INTO <table>), WRITE (PUT, REMOVE); see catalog/stages.py.
    "STAGE": ("READ", "WRITE"),
    "WAREHOUSE": ("USAGE", "OPERATE", "MONITOR", "MODIFY"),
}


class Role(models.Model):
    name = models.CharField(max_length=255, unique=True)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="roles", blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Grant(models.Model):
    """One privilege on one object, held by a role (or a user for database roles / roles).

    Stored by GRANT and removed by REVOKE. Which privileges a statement needs, the role hierarchy and
    the checks themselves belong to the access-control service (access/grants.py).
    """

    privilege = models.CharField(max_length=64)  # USAGE, CREATE MODEL, SELECT, OWNERSHIP, ROLE, DATABASE ROLE …
    object_type = models.CharField(max_length=32)  # DATABASE, SCHEMA, TABLE, VIEW, MODEL, WAREHOUSE, ROLE, DATABASE ROLE
    object_name = models.CharField(max_length=767)  # fully qualified, identifier rules applied (DB.SCHEMA.NAME)
    grantee_type = models.CharField(max_length=16, default="ROLE")  # ROLE or USER
    grantee_name = models.CharField(max_length=255)
    grant_option = models.BooleanField(default=False)
    granted_by = models.CharField(max_length=255, blank=True)  # the role that granted it
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["privilege", "object_type", "object_name", "grantee_type", "grantee_name"], name="unique_grant")]
        indexes = [models.Index(fields=["grantee_type", "grantee_name"]), models.Index(fields=["object_type", "object_name"])]

    def __str__(self) -> str:
        return f"{self.privilege} ON {self.object_type} {self.object_name} TO {self.grantee_type} {self.grantee_name}"


class ApiToken(models.Model):
    """A bearer token for the SQL API and the inference gateway. Only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # first characters, to recognise a token in lists
    created_on = models.DateTimeField(auto_now_add=True)
    last_used_on = models.DateTimeField(null=True, blank=True)
    revoked_on = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class UserProfile(models.Model):
    """What Snowflake keeps on a user beyond Django's auth fields."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    default_role = models.CharField(max_length=255, default="PUBLIC")  # the role a new session starts with
    default_warehouse = models.CharField(max_length=255, blank=True)
    comment = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.user.get_username()} (default role {self.default_role})"


class AccessEvent(models.Model):
    """One FINETUNE, COMPLETE, GRANT or REVOKE: who, with which role, on what, and how it ended."""

    class Outcome(models.TextChoices):
        SUCCESS = "SUCCESS"
        REFUSED = "REFUSED"  # a missing privilege
        FAILED = "FAILED"  # any other error

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user_name = models.CharField(max_length=255)
    role = models.CharField(max_length=255)
    action = models.CharField(max_length=64)  # FINETUNE CREATE, COMPLETE, GRANT, REVOKE, …
    object_type = models.CharField(max_length=32, blank=True)
    object_name = models.CharField(max_length=767, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    message = models.TextField(blank=True)  # the error, or what was done
    entry_point = models.CharField(max_length=32, blank=True)  # cli, api, worksheet, web, admin

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.user_name}/{self.role} {self.action} {self.object_name} {self.outcome}"
