from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

MB = 1024 * 1024
GB = 1024 * MB


class BaseModel(models.Model):
    """A model that can be fine-tuned, with the limits the Cortex user guide gives for it."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    hf_repo = models.CharField(max_length=200, blank=True, help_text="Hugging Face repo id of the weights")
    context_window = models.PositiveIntegerField()
    max_prompt_tokens = models.PositiveIntegerField()
    max_completion_tokens = models.PositiveIntegerField()
    training_data_limit_bytes = models.BigIntegerField()
    learning_rate = models.FloatField(default=2e-4, help_text="LoRA learning rate used for this base model")
    # Snowflake bills fine-tuning per million trained tokens; the usage history multiplies by this.
    training_credits_per_million_tokens = models.FloatField(default=1.0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def weights_dir(self) -> Path:
        return settings.MODEL_STORE / "base" / self.name

    @property
    def is_installed(self) -> bool:
        return (self.weights_dir / "config.json").exists() and any(self.weights_dir.glob("*.safetensors"))


class Database(models.Model):
    name = models.CharField(max_length=255, unique=True)
    owner_role = models.CharField(max_length=255, default="ACCOUNTADMIN")
    comment = models.TextField(blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Schema(models.Model):
    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="schemas")
    name = models.CharField(max_length=255)
    owner_role = models.CharField(max_length=255, default="ACCOUNTADMIN")
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["database__name", "name"]
        constraints = [models.UniqueConstraint(fields=["database", "name"], name="unique_schema_per_database")]

    def __str__(self) -> str:
        return f"{self.database.name}.{self.name}"
