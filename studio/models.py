"""What the Studio pages keep per user: saved worksheets."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Worksheet(models.Model):
    """A named SQL text a user saved from the worksheet page; only its owner lists or opens it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="worksheets")
    name = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "pk"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="worksheet_name_unique_per_owner")]

    def __str__(self) -> str:
        return self.name
