"""The console's fine-tuning jobs: read-only, with a Cancel action that calls FINETUNE('CANCEL')."""
from __future__ import annotations

from django.contrib import admin

from access.console import ReadOnlyRoleAdmin, named_filter
from jobs import finetune
from jobs.models import FineTuneJob


def _base_models() -> list[str]:
    from catalog.models import BaseModel

    return list(BaseModel.objects.order_by("name").values_list("name", flat=True))


def _warehouses() -> list[str]:
    from warehouses.models import Warehouse

    return list(Warehouse.objects.order_by("name").values_list("name", flat=True))


@admin.register(FineTuneJob)
class FineTuneJobAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("id", "status", "progress_percent", "base_model", "final_model_name", "role", "warehouse",
                    "created_on", "finished_on")
    # No date_hierarchy and no DISTINCT filters: each scans every row, and a job's row carries its whole
    # loss history (benchmarks/ui_render.py: 40 ms of a 90 ms page at 1,000 jobs).
    list_filter = ("status", named_filter("base_model", "base model", _base_models),
                   named_filter("warehouse", "warehouse", _warehouses), ("created_on", admin.DateFieldListFilter))
    search_fields = ("id", "final_model_name", "requested_name")
    fields = ("id", "status", "phase", "progress", "base_model", "database", "schema", "requested_name",
              "final_model_name", "training_data", "validation_data", "options", "epochs", "trained_tokens",
              "training_loss", "validation_loss", "error_message", "warehouse", "role", "created_on",
              "started_on", "finished_on")
    actions = ["cancel_selected"]

    def get_queryset(self, request):
        # The per-step history is not shown here; decoding it for a page of 100 jobs cost 30 ms.
        return super().get_queryset(request).defer("history", "validation_history", "adapter_check")

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, obj: FineTuneJob) -> str:
        return f"{obj.progress:.0%}"

    @admin.action(description="Cancel selected jobs")
    def cancel_selected(self, request, queryset) -> None:
        self.for_each(request, queryset, lambda session, job: finetune.cancel(session, job.id))
