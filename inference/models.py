from __future__ import annotations

from django.conf import settings
from django.db import models


class InferenceServer(models.Model):
    """A server speaking TGI's protocol for one base model and its adapters."""

    class Backend(models.TextChoices):
        EMBEDDED = "embedded"
        TGI = "tgi"
        VLLM = "vllm", "vLLM"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField()
    base_model = models.CharField(max_length=100, db_index=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.EMBEDDED)
    registered_on = models.DateTimeField(auto_now=True)
    # vLLM's own LoRA limits, registered with the flags it was started with (it reports neither):
    # --max-loras, the adapters one batch may mix (and, without --max-cpu-loras, the ones it keeps loaded),
    # and --max-lora-rank, the largest rank it accepts. Checked before deploying (inference/vllm.py).
    max_loras = models.PositiveIntegerField(null=True, blank=True)
    max_lora_rank = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_model} at {self.url})"


class CompletionUsage(models.Model):
    """One COMPLETE call (SQL, the OpenAI-compatible API or the Cortex REST API): who asked which model,
    and the input and output tokens it cost. The gateway's rate limits count these rows."""

    class EntryPoint(models.TextChoices):
        SQL = "sql", "SQL COMPLETE"
        OPENAI = "openai", "OpenAI API"
        CORTEX_REST = "cortex_rest", "Cortex REST API"
        PLAYGROUND = "playground", "Studio playground"

    class Status(models.TextChoices):
        RUNNING = "RUNNING"  # an HTTP request still generating: counted by the rate limit already
        SUCCESS = "SUCCESS"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"  # the client went away during a stream

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="completion_usage")
    user_name = models.CharField(max_length=150)  # kept when the user is dropped
    role = models.CharField(max_length=255, blank=True)
    warehouse = models.CharField(max_length=255, blank=True)
    model_name = models.CharField(max_length=767)  # as answered: a base model or a qualified model name
    base_model = models.CharField(max_length=100)
    entry_point = models.CharField(max_length=20, choices=EntryPoint.choices)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    started_on = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_on", "-pk"]
        indexes = [models.Index(fields=["user", "entry_point", "started_on"], name="usage_user_window"),  # limits
                   models.Index(fields=["model_name", "started_on"], name="usage_model_days")]  # a model's chart
        verbose_name_plural = "completion usage"

    def __str__(self) -> str:
        return f"{self.user_name} {self.model_name} {self.input_tokens}+{self.output_tokens} tokens"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
