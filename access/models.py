from __future__ import annotations

from django.conf import settings
from django.db import models

# Snowflake's system roles. Their hierarchy and the grants between them belong to the access-control
# issue; the skeleton needs the roles to exist so jobs and models record who owns them.
SYSTEM_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "PUBLIC")


class Role(models.Model):
    name = models.CharField(max_length=255, unique=True)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="roles", blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
