from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from access.console import ReadOnlyRoleAdmin
from models_registry.models import Deployment, FineTunedModel


class DeploymentInline(admin.TabularInline):
    """The model's state on each inference server; deployments change through `manage.py deploy`."""

    model = Deployment
    fields = ("server", "state", "reason", "updated_on")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # the model's page is already limited to its admin's view role

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FineTunedModel)
class FineTunedModelAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("__str__", "base_model", "owner_role", "deployment", "job_ref", "created_on", "studio_page")
    # __str__ is the qualified name. Not the job: its row carries the loss history, 50 ms to decode for
    # a page of 100 models (benchmarks/ui_render.py); the list shows only its id.
    list_select_related = ("schema__database",)
    list_filter = ("base_model", "owner_role", "deployments__state")
    search_fields = ("name", "schema__name", "schema__database__name")
    fields = ("schema", "name", "base_model", "owner_role", "job", "adapter_path", "metrics", "created_on")
    inlines = [DeploymentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deployments__server")

    @admin.display(description="Deployment")
    def deployment(self, obj: FineTunedModel) -> str:
        return ", ".join(f"{d.server.name}: {d.label}" for d in obj.deployments.all()) or "not deployed"

    @admin.display(description="Job", ordering="job")
    def job_ref(self, obj: FineTunedModel) -> str:
        return obj.job_id or "—"

    @admin.display(description="In the studio")
    def studio_page(self, obj: FineTunedModel) -> str:
        return format_html('<a href="{}">Model page</a>', reverse("model_detail", args=[obj.qualified_name]))


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyRoleAdmin):
    """Every model's state on every inference server, failures first to find; `manage.py deploy` and
    COMPLETE move them (inference/deployment.py)."""

    view_role = "SYSADMIN"
    list_display = ("model", "server", "state", "reason", "updated_on")
    list_filter = ("state", "server")
    list_select_related = ("model__schema__database", "server")
    search_fields = ("model__name", "server__name", "reason")
    fields = list_display
