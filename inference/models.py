from __future__ import annotations

from django.db import models


class InferenceServer(models.Model):
    """A server speaking TGI's protocol for one base model and its adapters."""

    class Backend(models.TextChoices):
        EMBEDDED = "embedded"
        TGI = "tgi"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField()
    base_model = models.CharField(max_length=100, db_index=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.EMBEDDED)
    registered_on = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_model} at {self.url})"
