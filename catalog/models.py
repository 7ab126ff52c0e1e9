from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from errors import UserError

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
    # Disabled: COMPLETE refuses it and every model fine-tuned from it, and FINETUNE refuses to train on it,
    # as Cortex fine-tuned models stop working when their base model is removed.
    enabled = models.BooleanField(default=True)

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

    def require_enabled(self, *, fine_tuned: str | None = None, finetune: bool = False) -> None:
        """Refuse a disabled base model, naming it and what stops working because of it."""
        if self.enabled:
            return
        if fine_tuned:
            consequence = f", so fine-tuned model '{fine_tuned}' no longer works"
        elif finetune:
            consequence = ", so no model can be fine-tuned from it"
        else:
            consequence = ""
        raise UserError(f"Base model '{self.name}' is disabled{consequence}. An administrator can enable it "
                          f"again: python manage.py basemodels enable {self.name}", code=100357, sqlstate="22023")


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


class Stage(models.Model):
    """A named internal stage; its files live on disk under STAGE_DIR/named/<pk> (see catalog/stages.py)."""

    schema = models.ForeignKey(Schema, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=255)
    owner_role = models.CharField(max_length=255, default="ACCOUNTADMIN")
    comment = models.TextField(blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schema__database__name", "schema__name", "name"]
        constraints = [models.UniqueConstraint(fields=["schema", "name"], name="unique_stage_per_schema")]

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


class LoadedFile(models.Model):
    """Load metadata: which staged file (by name and MD5) COPY INTO already loaded into which table, so a
    second COPY skips it unless FORCE = TRUE, as Snowflake does."""

    database = models.CharField(max_length=255)
    schema = models.CharField(max_length=255)
    table = models.CharField(max_length=255)
    file = models.CharField(max_length=1024)
    md5 = models.CharField(max_length=32)
    rows_loaded = models.BigIntegerField(default=0)
    loaded_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["database", "schema", "table"], name="loadedfile_table")]


class SchemaObject(models.Model):
    """Who owns a table or view, and what DuckDB cannot remember for us: the comment, the Snowflake
    column types as declared (DuckDB keeps only its own) and a view's text as written. DuckDB stays
    the source of truth for which tables exist; a table without a record (one DuckDB has but this
    table missed) shows its schema's owner."""

    class Kind(models.TextChoices):
        TABLE = "TABLE"
        VIEW = "VIEW"

    schema = models.ForeignKey(Schema, on_delete=models.CASCADE, related_name="schema_objects")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TABLE)
    owner_role = models.CharField(max_length=255, default="ACCOUNTADMIN")
    comment = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="a view's CREATE statement as the user wrote it")
    column_types = models.JSONField(default=dict, blank=True, help_text="column name -> declared Snowflake type")
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schema__database__name", "schema__name", "name"]
        constraints = [models.UniqueConstraint(fields=["schema", "name"], name="unique_object_per_schema")]

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"
