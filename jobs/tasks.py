"""RQ tasks: turn a job row into a trainer config, run it, write the outcome back."""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from jobs.models import FineTuneJob

log = logging.getLogger(__name__)
Status = FineTuneJob.Status


class JobHooks:
    """Persists progress as the trainer reports it, and tells it when the job was cancelled."""

    # Writing every step of a tiny model would hammer SQLite; a second between writes loses nothing visible.
    MIN_WRITE_INTERVAL_S = 1.0

    def __init__(self, job: FineTuneJob) -> None:
        self.job = job
        self.history: list[dict[str, Any]] = []
        self.validation_history: list[dict[str, Any]] = []
        self.last_write = 0.0
        self.progress = 0.0

    def _save(self, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not force and not fields and now - self.last_write < self.MIN_WRITE_INTERVAL_S:
            return
        self.last_write = now
        FineTuneJob.objects.filter(pk=self.job.pk, status=Status.IN_PROGRESS).update(
            progress=self.progress, history=self.history, validation_history=self.validation_history, **fields
        )

    def on_phase(self, phase: str) -> None:
        self._save(force=True, phase=phase)

    def on_step(self, m) -> None:
        self.progress = min(0.99, float(m.progress))  # 1.0 only once the model is registered
        self.history.append({
            "step": m.step, "total_steps": m.total_steps, "epoch": round(float(m.epoch), 4),
            "loss": float(m.loss), "learning_rate": float(m.learning_rate),
            "tokens_per_second": round(float(m.tokens_per_second), 2), "eta_seconds": round(float(m.eta_seconds), 1),
            "at": int(time.time() * 1000),
        })
        self._save()

    def on_eval(self, epoch: float, validation_loss: float, step: int | None = None) -> None:
        self.validation_history.append({"epoch": round(float(epoch), 4), "step": step,
                                        "validation_loss": float(validation_loss)})
        self._save(force=True)

    def should_cancel(self) -> bool:
        status = FineTuneJob.objects.filter(pk=self.job.pk).values_list("status", flat=True).first()
        return status != Status.IN_PROGRESS


def _fail(job_id: str, message: str) -> bool:
    """Mark the job ERROR unless it already ended; whether it was marked."""
    return FineTuneJob.objects.filter(pk=job_id, status__in=(Status.PENDING, Status.IN_PROGRESS)).update(
        status=Status.ERROR, error_message=message, finished_on=timezone.now(), phase="failed"
    ) == 1


def fail_abandoned(job_id: str, message: str) -> bool:
    """A job whose work horse died outside run_finetune_job: mark it ERROR and drop its half-written
    adapter (run_finetune_job's own `finally` never ran)."""
    failed = _fail(job_id, message)
    shutil.rmtree(_staging(job_id), ignore_errors=True)
    return failed


def run_finetune_job(job_id: str) -> str:
    """Train one job. Never raises for job-level failures: they are recorded on the row."""
    from catalog.models import BaseModel
    from jobs.training_data import read_rows
    from models_registry import registry
    from trainer import DataError, TrainConfig, TrainingCancelled, auto_epochs, check_rows, split_validation, train

    close_old_connections()
    job = FineTuneJob.objects.filter(pk=job_id).first()
    if job is None:
        return "missing"
    if not job.transition(Status.PENDING, Status.IN_PROGRESS, started_on=timezone.now(), phase="loading"):
        return f"skipped: job is {job.status}"

    staging = registry.staging_dir(job.id)
    hooks = JobHooks(job)
    try:
        base = BaseModel.objects.get(name=job.base_model)
        hooks.on_phase("reading data")
        rows = read_rows(job.training_data, job.query_database or None, job.query_schema or None)
        # Checked before anything is split, so row numbers in messages are positions in the query result.
        check_rows(rows, max_training_bytes=base.training_data_limit_bytes)
        if job.validation_data:
            train_rows = rows
            val_rows = read_rows(job.validation_data, job.query_database or None, job.query_schema or None)
            try:
                check_rows(val_rows)
            except DataError as exc:
                raise DataError(f"Validation data: {exc}") from None
        else:
            train_rows, val_rows = split_validation(rows, fraction=TrainConfig.validation_fraction, seed=0)
        epochs = job.options.get("max_epochs") or auto_epochs(len(train_rows))
        FineTuneJob.objects.filter(pk=job.pk).update(epochs=epochs)
        config = TrainConfig(
            base_model_path=str(base.weights_dir),
            output_dir=str(staging),
            max_epochs=epochs,
            learning_rate=float(job.options.get("learning_rate", base.learning_rate)),
            eval_steps=job.options.get("eval_steps"),
            max_prompt_tokens=base.max_prompt_tokens,
            max_completion_tokens=base.max_completion_tokens,
            max_training_bytes=base.training_data_limit_bytes,
            metadata={"job_id": job.id, "base_model": base.name, "training_data": job.training_data,
                      "validation_data": job.validation_data, "options": job.options},
        )
        result = train(config, train_rows, val_rows, hooks)
        hooks.on_phase("registering")
        metrics = {"training_loss": result.training_loss, "validation_loss": result.validation_loss,
                   "trained_tokens": result.trained_tokens, "epochs": result.epochs}
        job.refresh_from_db()
        if job.status != Status.IN_PROGRESS:
            raise TrainingCancelled()
        model = registry.register(job, staging, metrics)
        job.transition(
            Status.IN_PROGRESS, Status.SUCCESS,
            progress=1.0, phase="done", finished_on=timezone.now(), final_model_name=model.qualified_name,
            trained_tokens=result.trained_tokens, training_loss=result.training_loss,
            validation_loss=result.validation_loss, epochs=result.epochs,
            history=hooks.history, validation_history=hooks.validation_history, adapter_check=result.adapter_check,
        )
        return "success"
    except TrainingCancelled:
        return "cancelled"
    except DataError as exc:
        _fail(job.id, str(exc))
        return "error"
    except Exception as exc:  # recorded on the job; a crash loop helps nobody
        log.exception("fine-tuning job %s failed", job.id)
        _fail(job.id, f"Training failed: {type(exc).__name__}: {exc}")
        log.debug("%s", traceback.format_exc())
        return "error"
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def on_worker_failure(rq_job, connection, exc_type, exc_value, tb) -> None:
    """The work horse died (killed, out of memory) outside our own error handling."""
    if rq_job.args:
        fail_abandoned(rq_job.args[0], f"The worker running this job stopped unexpectedly "
                                       f"({exc_type.__name__ if exc_type else 'killed'}: {exc_value}).")


def on_worker_stopped(rq_job, connection) -> None:
    """CANCEL killed the work horse; the row is already CANCELLED, only the half-written adapter remains."""
    if rq_job.args:
        shutil.rmtree(_staging(rq_job.args[0]), ignore_errors=True)


def _staging(job_id: str):
    from models_registry.registry import staging_dir

    return staging_dir(job_id)
