"""The console's fine-tuning jobs: read-only, with a Cancel action that calls FINETUNE('CANCEL')."""
from __future__ import annotations

from django.contrib import admin

from jobs import finetune
from jobs.models import FineTuneJob
from studio.admin_site import ReadOnlyRoleAdmin


@admin.register(FineTuneJob)
class FineTuneJobAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("id", "status", "progress_percent", "base_model", "final_model_name", "role", "warehouse",
                    "created_on", "finished_on")
    list_filter = ("status", "base_model", "warehouse")
    search_fields = ("id", "final_model_name", "requested_name")
    date_hierarchy = "created_on"
    fields = ("id", "status", "phase", "progress", "base_model", "database", "schema", "requested_name",
              "final_model_name", "training_data", "validation_data", "options", "epochs", "trained_tokens",
              "training_loss", "validation_loss", "error_message", "warehouse", "role", "created_on",
              "started_on", "finished_on")
    actions = ["cancel_selected"]

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, obj: FineTuneJob) -> str:
        return f"{obj.progress:.0%}"

    @admin.action(description="Cancel selected jobs")
    def cancel_selected(self, request, queryset) -> None:
        self.for_each(request, queryset, lambda session, job: finetune.cancel(session, job.id))
