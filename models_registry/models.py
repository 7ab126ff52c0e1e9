from __future__ import annotations

from pathlib import Path

from django.db import models

from catalog.identifiers import QualifiedName
from catalog.models import Schema


class FineTunedModel(models.Model):
    """A fine-tuned model in a schema's registry: a LoRA adapter over a base model."""

    schema = models.ForeignKey(Schema, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=255)
    base_model = models.CharField(max_length=100)
    owner_role = models.CharField(max_length=255)
    job = models.OneToOneField("jobs.FineTuneJob", null=True, blank=True, on_delete=models.SET_NULL)
    adapter_path = models.CharField(max_length=1000)
    metrics = models.JSONField(default=dict, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schema__database__name", "schema__name", "name"]
        constraints = [models.UniqueConstraint(fields=["schema", "name"], name="unique_model_per_schema")]

    def __str__(self) -> str:
        return self.qualified_name

    @property
    def qualified_name(self) -> str:
        return str(QualifiedName(self.schema.database.name, self.schema.name, self.name))

    @property
    def adapter_dir(self) -> Path:
        return Path(self.adapter_path)
