from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_job_id() -> str:
    return f"ft_{uuid.uuid4()}"


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class FineTuneJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        IN_PROGRESS = "IN_PROGRESS"
        SUCCESS = "SUCCESS"
        ERROR = "ERROR"
        CANCELLED = "CANCELLED"

    FINAL_STATUSES = (Status.SUCCESS, Status.ERROR, Status.CANCELLED)

    id = models.CharField(primary_key=True, max_length=64, default=new_job_id, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    phase = models.CharField(max_length=20, default="queued", help_text="queued, loading, training, saving, …")
    progress = models.FloatField(default=0.0)
    base_model = models.CharField(max_length=100)
    # Where the model will be registered, normalized by the identifier rules; the final name may get a
    # suffix when the name is taken by the time the job finishes.
    database = models.CharField(max_length=255)
    schema = models.CharField(max_length=255)
    requested_name = models.CharField(max_length=255)
    final_model_name = models.CharField(max_length=800, blank=True)
    training_data = models.TextField()
    # The session's database and schema when the job was created: the queries resolve against them.
    query_database = models.CharField(max_length=255, blank=True)
    query_schema = models.CharField(max_length=255, blank=True)
    validation_data = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    trained_tokens = models.BigIntegerField(null=True, blank=True)
    training_loss = models.FloatField(null=True, blank=True)
    validation_loss = models.FloatField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="per-step training metrics")
    validation_history = models.JSONField(default=list, blank=True, help_text="per-epoch validation loss")
    adapter_check = models.JSONField(null=True, blank=True,
                                     help_text="validation prompts answered with and without the adapter")
    error_message = models.TextField(blank=True)
    resumes = models.PositiveIntegerField(default=0, help_text="times training carried on from a checkpoint")
    interruption = models.TextField(blank=True, help_text="why training last stopped and carried on")
    warehouse = models.CharField(max_length=255)
    role = models.CharField(max_length=255)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    rq_job_id = models.CharField(max_length=100, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    started_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_on"]
        # status: the workers' sweeps; created_on: SHOW and the Jobs list, newest first.
        indexes = [models.Index(fields=["status"]), models.Index(fields=["-created_on"], name="job_newest_first")]

    def __str__(self) -> str:
        return self.id

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    def transition(self, old: str | tuple[str, ...], new: str, **fields: Any) -> bool:
        """Atomically move from `old` to `new`; False when another process moved the job first."""
        olds = (old,) if isinstance(old, str) else old
        updated = FineTuneJob.objects.filter(pk=self.pk, status__in=olds).update(status=new, **fields)
        if updated:
            self.refresh_from_db()
        return updated == 1

    def options_used(self) -> dict[str, Any]:
        """The options as given, with the epochs the trainer settled on, as the job page shows them.
        DESCRIBE and SHOW leave them out: Snowflake's clients refuse any key they do not know."""
        return dict(self.options) if self.epochs is None else {**self.options, "max_epochs": self.epochs}

    def show_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "base_model": self.base_model,
            "created_on": epoch_ms(self.created_on),
        }

    def describe(self) -> dict[str, Any]:
        """The OBJECT FINETUNE('DESCRIBE') returns, field by field as in Snowflake's reference, with no
        key beyond the twelve snowflake-ml's FinetuneStatus accepts (it raises TypeError on any other):
        id, status, base_model, created_on, error, finished_on, progress, training_result, trained_tokens,
        training_data, validation_data, model. The options are not one of them (see options_used)."""
        result: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "progress": round(self.progress, 4),
            "base_model": self.base_model,
            "created_on": epoch_ms(self.created_on),
            "training_data": self.training_data,
        }
        if self.validation_data:
            result["validation_data"] = self.validation_data
        if self.status == self.Status.SUCCESS:
            result["finished_on"] = epoch_ms(self.finished_on)
            result["model"] = self.final_model_name
            result["trained_tokens"] = self.trained_tokens
            result["training_result"] = {
                "training_loss": self.training_loss,
                "validation_loss": self.validation_loss,
            }
        elif self.status == self.Status.ERROR:
            result["finished_on"] = epoch_ms(self.finished_on)
            result["error"] = {"message": self.error_message}
        elif self.status == self.Status.CANCELLED:
            result["finished_on"] = epoch_ms(self.finished_on)
        return result


class CollectedJob(models.Model):
    """What is left of a finished job that retention collected (jobs/retention.py): enough to tell whoever
    asks for it that it existed and when it went, rather than that it never did. The role is kept so the
    answer reaches only those who could see the job (anyone else gets the plain not-found error)."""

    id = models.CharField(primary_key=True, max_length=64)
    status = models.CharField(max_length=20, choices=FineTuneJob.Status.choices)
    role = models.CharField(max_length=255)
    finished_on = models.DateTimeField()
    collected_on = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.id
