from __future__ import annotations

import hashlib

from django.db import models


class Account(models.Model):
    """Another deployment of the organization, registered by an ORGADMIN: where it answers and the key both
    sides hold. Nothing is shared with or replicated to a deployment without this row, and that deployment
    needs the same row for this one, so trust is always mutual.

    The key is kept as given because each request between deployments is signed with it (HMAC): a hash
    could verify nothing. Only a fingerprint of it is ever shown (SHOW ACCOUNTS)."""

    organization = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    url = models.URLField(max_length=500)
    key = models.CharField(max_length=255)
    comment = models.TextField(blank=True)
    created_by = models.CharField(max_length=255, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_account_in_organization")]

    def __str__(self) -> str:
        return self.locator

    @property
    def locator(self) -> str:
        """ORG.ACCOUNT, as shares and replicas name an account."""
        return f"{self.organization}.{self.name}"

    @property
    def key_fingerprint(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]
