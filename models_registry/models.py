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


class Deployment(models.Model):
    """A fine-tuned model's state on one inference server serving its base model.

    pending -> loading -> ready | failed, moved by inference/deployment.py. The registry is the source of
    truth for routing: COMPLETE sends a fine-tuned model only to a server where this row is ready, because
    TGI answers an adapter it does not know with the base model and HTTP 200.
    """

    class State(models.TextChoices):
        PENDING = "pending"  # to be loaded; whoever claims it next (a deploy, a COMPLETE) loads it
        LOADING = "loading"  # claimed: a deploy is loading it now
        READY = "ready"  # the server confirmed it serves the adapter
        FAILED = "failed"  # the server refused it; `reason` says why

    model = models.ForeignKey(FineTunedModel, on_delete=models.CASCADE, related_name="deployments")
    server = models.ForeignKey("inference.InferenceServer", on_delete=models.CASCADE, related_name="deployments")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "server__name"]
        constraints = [models.UniqueConstraint(fields=["model", "server"], name="one_deployment_per_model_and_server")]

    def __str__(self) -> str:
        return f"{self.model} on {self.server.name}: {self.label}"

    @property
    def label(self) -> str:
        """The state as SHOW MODELS and the console print it, with the reason when there is one."""
        return f"{self.state} ({self.reason})" if self.reason and self.state != self.State.READY else self.state
