from __future__ import annotations

from django.contrib import admin

from models_registry.models import Deployment, FineTunedModel
from studio.admin_site import ReadOnlyRoleAdmin


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
    list_display = ("__str__", "base_model", "owner_role", "deployment", "job", "created_on")
    list_filter = ("base_model", "owner_role", "deployments__state")
    search_fields = ("name", "schema__name", "schema__database__name")
    fields = ("schema", "name", "base_model", "owner_role", "job", "adapter_path", "metrics", "created_on")
    inlines = [DeploymentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deployments__server")

    @admin.display(description="Deployment")
    def deployment(self, obj: FineTunedModel) -> str:
        return ", ".join(f"{d.server.name}: {d.label}" for d in obj.deployments.all()) or "not deployed"
