from __future__ import annotations

from django.db import models


class Share(models.Model):
    """An outbound share: objects of this account (a database, its schemas, fine-tuned models) that the
    accounts added to it may use, as Snowflake's Secure Data Sharing."""

    name = models.CharField(max_length=255, unique=True)
    owner_role = models.CharField(max_length=255, default="ACCOUNTADMIN")
    comment = models.TextField(blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SharedObject(models.Model):
    """USAGE on one object granted to a share (GRANT USAGE ON MODEL d.s.m TO SHARE s)."""

    share = models.ForeignKey(Share, on_delete=models.CASCADE, related_name="objects_granted")
    object_type = models.CharField(max_length=16)  # DATABASE, SCHEMA, MODEL
    object_name = models.CharField(max_length=767)  # the stored key, as Grant.object_name
    privilege = models.CharField(max_length=16, default="USAGE")
    granted_by = models.CharField(max_length=255, blank=True)
    granted_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["granted_on", "pk"]
        constraints = [models.UniqueConstraint(fields=["share", "object_type", "object_name"],
                                               name="unique_object_per_share")]


class ShareConsumer(models.Model):
    """An account added to a share (ALTER SHARE s ADD ACCOUNTS = org.acct); it must be registered."""

    share = models.ForeignKey(Share, on_delete=models.CASCADE, related_name="consumers")
    account = models.ForeignKey("organization.Account", on_delete=models.CASCADE, related_name="shares_received")
    added_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["share", "account"], name="unique_consumer_per_share")]


class ImportedDatabase(models.Model):
    """A database of this account created from another account's share (CREATE DATABASE x FROM SHARE
    org.acct.s): its schemas and models mirror what the share lists, and it is read-only here."""

    database = models.OneToOneField("catalog.Database", on_delete=models.CASCADE, related_name="imported_from")
    provider = models.ForeignKey("organization.Account", on_delete=models.PROTECT, related_name="shares_imported")
    share_name = models.CharField(max_length=255)
    created_on = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.database.name} from {self.provider.locator}.{self.share_name}"
