from __future__ import annotations

from django.db import models


class Warehouse(models.Model):
    """Named compute. Each warehouse is one RQ queue; its workers train on its devices."""

    name = models.CharField(max_length=255, unique=True)
    size = models.CharField(max_length=20, default="XSMALL")
    devices = models.CharField(max_length=100, default="cpu", help_text="where its jobs train: cpu, cuda, cuda:N, or several GPUs for data parallel training: cuda:0-3, cuda:0,2")
    concurrency = models.PositiveIntegerField(default=1, help_text="jobs trained at once")
    hosts = models.CharField(max_length=1000, blank=True, default="", help_text=(
        "empty: each worker trains its jobs alone; or the hosts one job trains across, comma-separated, each "
        "with the devices above: the first one's workers (manage.py worker --host NAME) take the jobs, the "
        "others' join them"))
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        return f"warehouse.{self.name}"

    @property
    def host_list(self) -> list[str]:
        return [h.strip() for h in self.hosts.split(",") if h.strip()]

    def join_queue_name(self, host: str) -> str:
        """Where the worker that took a job asks `host`'s workers to join its training."""
        return f"warehouse.{self.name}@{host}"
