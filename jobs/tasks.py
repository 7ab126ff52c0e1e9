"""RQ tasks: turn a job row into a trainer config, run it, write the outcome back."""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from jobs import loss_history, recovery
from jobs.models import FineTuneJob

log = logging.getLogger(__name__)
Status = FineTuneJob.Status


class JobHooks:
    """Persists progress as the trainer reports it, and tells it when the job was cancelled.

    Everything is tied to this try's RQ job id: once the job was handed to another try (RQ declared this
    one abandoned and it was queued to carry on), this one stops and writes nothing more."""

    # Writing every step of a tiny model would hammer SQLite; a second between writes loses nothing visible.
    MIN_WRITE_INTERVAL_S = 1.0

    def __init__(self, job: FineTuneJob) -> None:
        self.job = job
        # A job carrying on from a checkpoint keeps the metrics of its earlier tries.
        self.history: list[dict[str, Any]] = list(job.history)
        self.validation_history: list[dict[str, Any]] = list(job.validation_history)
        self.last_write = 0.0
        self.progress = 0.0

    def _save(self, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not force and not fields and now - self.last_write < self.MIN_WRITE_INTERVAL_S:
            return
        self.last_write = now
        FineTuneJob.objects.filter(pk=self.job.pk, status=Status.IN_PROGRESS, rq_job_id=self.job.rq_job_id).update(
            progress=self.progress, history=self.history, validation_history=self.validation_history, **fields
        )

    def on_phase(self, phase: str) -> None:
        self._save(force=True, phase=phase)

    def on_step(self, m) -> None:
        self.progress = min(0.99, float(m.progress))  # 1.0 only once the model is registered
        while self.history and self.history[-1]["step"] >= m.step:  # a try that started over (no checkpoint)
            self.history.pop()
        # Bounded: a long run's older steps are merged into fewer points (jobs/loss_history.py).
        self.history = loss_history.append(self.history, {
            "step": m.step, "total_steps": m.total_steps, "epoch": round(float(m.epoch), 4),
            "loss": float(m.loss), "learning_rate": float(m.learning_rate),
            "tokens_per_second": round(float(m.tokens_per_second), 2), "eta_seconds": round(float(m.eta_seconds), 1),
            "at": int(time.time() * 1000),
        })
        self._save()

    def on_resume(self, step: int) -> None:
        """Carrying on from a checkpoint: the metrics persisted after its step were never kept."""
        self.history = loss_history.until(self.history, step)
        self.validation_history = [v for v in self.validation_history if (v.get("step") or 0) <= step]
        if self.history:
            self.progress = min(0.99, step / self.history[-1]["total_steps"])
        self._save(force=True)

    def on_eval(self, epoch: float, validation_loss: float, step: int | None = None) -> None:
        while self.validation_history and (self.validation_history[-1].get("step") or 0) >= (step or 0):
            self.validation_history.pop()
        # Bounded like the steps: eval_steps=1 evaluates after every step.
        self.validation_history = loss_history.append(
            self.validation_history, {"epoch": round(float(epoch), 4), "step": step,
                                      "validation_loss": float(validation_loss)}, key="validation_loss")
        self._save(force=True)

    def should_cancel(self) -> bool:
        return not FineTuneJob.objects.filter(pk=self.job.pk, status=Status.IN_PROGRESS,
                                              rq_job_id=self.job.rq_job_id).exists()

    def on_launch(self, join: dict[str, Any]) -> None:
        """A warehouse over several hosts: ask each other host's workers to join this training."""
        from jobs.queues import enqueue_join
        from warehouses.models import Warehouse

        warehouse = Warehouse.objects.get(name=self.job.warehouse)
        for host in warehouse.host_list[1:]:
            enqueue_join(warehouse, host, self.job.id, join)

    def on_ranks(self, ranks: list[dict[str, Any]]) -> None:
        log.info("job %s trains on %s", self.job.id,
                 ", ".join(f"rank {r['rank']} (process {r['pid']} on {r['host']})" for r in ranks))


def training_devices(warehouse_name: str) -> list[str]:
    """The torch devices a warehouse trains on, from Warehouse.devices ("cpu", "cuda:1", "cuda:0-3"), checked
    against what this worker's machine has: a clear error instead of a CUDA stack trace."""
    from trainer import DataError
    from trainer.distributed import parse_devices
    from warehouses.models import Warehouse

    spec = Warehouse.objects.filter(name=warehouse_name).values_list("devices", flat=True).first() or "cpu"
    try:
        devices = parse_devices(spec)
    except ValueError:
        raise DataError(f"Warehouse {warehouse_name} lists devices '{spec}', which is none of cpu, cuda, cuda:N, "
                        "cuda:N-M or cuda:N,M. Correct it in the admin console.") from None
    if devices == ["cpu"]:
        return devices
    import torch

    if not torch.cuda.is_available():
        raise DataError(f"Warehouse {warehouse_name} trains on {spec}, but the worker running it sees no CUDA GPU. "
                        "Run the warehouse's workers on a GPU machine, or set the warehouse's devices to cpu.")
    highest = max(int(d.partition(":")[2]) for d in devices)
    if highest >= torch.cuda.device_count():
        raise DataError(f"Warehouse {warehouse_name} trains on {spec}, but the worker running it sees only "
                        f"{torch.cuda.device_count()} CUDA GPU(s).")
    return devices


def training_hosts(warehouse_name: str) -> list[str]:
    """The hosts one job of this warehouse trains across ([] : the worker's own alone). The first one's workers
    take the jobs (manage.py worker refuses to take them elsewhere), so it is this worker's."""
    from warehouses.models import Warehouse

    warehouse = Warehouse.objects.filter(name=warehouse_name).first()
    return warehouse.host_list if warehouse is not None else []


def join_training(job_id: str, join: dict[str, Any]) -> str:
    """On another host of a warehouse over several hosts: start this host's ranks of the job's training
    (trainer.launch.join_command) and wait for them. The job's own worker reports, cancels and saves."""
    import subprocess

    from trainer.launch import die_with_parent, join_command

    close_old_connections()
    job = FineTuneJob.objects.filter(pk=job_id, status=Status.IN_PROGRESS).first()
    if job is None:
        return "skipped: the job is not training"
    devices = training_devices(job.warehouse)
    log.info("job %s: joining its training with %s", job_id, ", ".join(devices))
    agent = subprocess.Popen(join_command(join, devices), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    return f"joined: torchrun exited with status {agent.wait()}"


def cpu_threads(warehouse_name: str) -> int:
    """Cores per job: a warehouse training `concurrency` jobs at once shares this machine's cores among them
    (each torch process otherwise takes them all, and N jobs x all cores only thrash)."""
    import os

    from warehouses.models import Warehouse

    concurrency = Warehouse.objects.filter(name=warehouse_name).values_list("concurrency", flat=True).first() or 1
    return max(1, len(os.sched_getaffinity(0)) // concurrency)


def run_finetune_job(job_id: str) -> str:
    """Train one job. Never raises for job-level failures: they are recorded on the row."""
    from catalog.models import BaseModel
    from jobs.training_data import prepare_tokens
    from models_registry import registry
    from trainer import FINETUNE_OPTIONS, DataError, TrainConfig, TrainingCancelled, epochs_to_train, train
    from trainer.checkpoint import saved_batches_per_step
    from trainer.launch import RankFailed
    from trainer.out_of_memory import TrainingOutOfMemory

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
        # Read and tokenised batch by batch into a token store on disk that every rank maps read-only: the
        # job's memory does not grow with its data (jobs/training_data.py).
        from transformers import AutoTokenizer

        tokens = prepare_tokens(
            job, recovery.tokens_dir(job.id), AutoTokenizer.from_pretrained(str(base.weights_dir)),
            max_training_bytes=base.training_data_limit_bytes, max_prompt_tokens=base.max_prompt_tokens,
            max_completion_tokens=base.max_completion_tokens, validation_fraction=TrainConfig.validation_fraction,
            should_cancel=hooks.should_cancel)
        options = {name: job.options[name] for name in FINETUNE_OPTIONS if name in job.options}
        epochs = epochs_to_train(options.pop("max_epochs", None), len(tokens.train))
        FineTuneJob.objects.filter(pk=job.pk).update(epochs=epochs)
        devices = training_devices(job.warehouse)
        device = devices[0]
        hosts = training_hosts(job.warehouse)
        config = TrainConfig(
            base_model_path=str(base.weights_dir),
            output_dir=str(staging),
            max_epochs=epochs,
            learning_rate=float(options.pop("learning_rate", base.learning_rate)),  # by default the base model's
            **options,  # the others, by their TrainConfig names; unset ones keep TrainConfig's defaults
            device=device,
            devices=devices if len(devices) > 1 else None,  # several GPUs: data parallel, one process each
            nodes=max(1, len(hosts)),
            host=hosts[0] if hosts else "127.0.0.1",
            # A try carrying on from a checkpoint keeps its steps, on however many ranks there are now.
            batches_per_step=saved_batches_per_step(recovery.checkpoint_dir(job.id)),
            num_threads=cpu_threads(job.warehouse) if device == "cpu" else None,
            checkpoint_dir=str(recovery.checkpoint_dir(job.id)),
            checkpoint_interval_s=settings.CHECKPOINT_INTERVAL_S,
            max_prompt_tokens=base.max_prompt_tokens,
            max_completion_tokens=base.max_completion_tokens,
            max_training_bytes=base.training_data_limit_bytes,
            token_store=str(tokens.directory),
            metadata={"job_id": job.id, "base_model": base.name, "training_data": job.training_data,
                      "validation_data": job.validation_data, "options": job.options},
        )
        result = train(config, (), (), hooks)
        hooks.on_phase("registering")
        metrics = {"training_loss": result.training_loss, "validation_loss": result.validation_loss,
                   "trained_tokens": result.trained_tokens, "epochs": result.epochs}
        with transaction.atomic():
            # SUCCESS is claimed before the model is registered, in one transaction: a CANCEL arriving now
            # waits for the commit and then finds the job finished. Never a CANCELLED job with a model.
            if not FineTuneJob.objects.filter(pk=job.pk, status=Status.IN_PROGRESS, rq_job_id=job.rq_job_id).update(
                status=Status.SUCCESS, progress=1.0, phase="done", finished_on=timezone.now(),
                trained_tokens=result.trained_tokens, training_loss=result.training_loss,
                validation_loss=result.validation_loss, epochs=result.epochs, history=hooks.history,
                validation_history=hooks.validation_history, adapter_check=result.adapter_check,
            ):
                raise TrainingCancelled()
            job.refresh_from_db()
            model = registry.register(job, staging, metrics)
            FineTuneJob.objects.filter(pk=job.pk).update(final_model_name=model.qualified_name)
        deploy_quietly(model)  # committed: the inference servers can read the model's adapter now
        return "success"
    except TrainingCancelled:
        return "cancelled"
    except (DataError, TrainingOutOfMemory) as exc:
        recovery.fail(job.id, str(exc))
        return "error"
    except RankFailed as exc:  # a rank died (killed, out of memory): carry on from the checkpoint, or fail
        recovery.interrupted(job.rq_job_id, str(exc))
        return "interrupted"
    except Exception as exc:  # recorded on the job; a crash loop helps nobody
        log.exception("fine-tuning job %s failed", job.id)
        recovery.fail(job.id, f"Training failed: {type(exc).__name__}: {exc}")
        log.debug("%s", traceback.format_exc())
        return "error"
    finally:
        # A killed horse never gets here, and its checkpoint stays. A try that stopped because the job was
        # handed to another try (queued again to carry on) must leave the checkpoint to that one too.
        if FineTuneJob.objects.filter(pk=job.id, status__in=FineTuneJob.FINAL_STATUSES).exists():
            recovery.discard_files(job.id)


def deploy_quietly(model) -> None:
    """Deploy a newly registered model. Its outcome (failed, with the server's reason) is the deployment's
    to record, never the job's: the job succeeded, and `manage.py deploy` retries."""
    from inference import deployment

    try:
        deployment.deploy(model)
    except Exception:  # a bug or a database error here must not turn a trained model into a failed job
        log.exception("deploying %s failed", model)


def on_worker_failure(rq_job, connection, exc_type, exc_value, tb) -> None:
    """The work horse died (killed, out of memory) outside our own error handling, or RQ found it
    abandoned: carry on from the checkpoint, or fail the job."""
    cause = f"{exc_type.__name__}: {exc_value}" if exc_type else "killed"
    recovery.interrupted(rq_job.id, f"The worker running this job stopped unexpectedly ({cause}).")


def on_worker_stopped(rq_job, connection) -> None:
    """CANCEL killed the work horse; the row is already CANCELLED, only its files remain."""
    if rq_job.args:
        recovery.discard_files(rq_job.args[0])
