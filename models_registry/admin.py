from __future__ import annotations

from django.contrib import admin

from models_registry.models import FineTunedModel
from studio.admin_site import ReadOnlyRoleAdmin


@admin.register(FineTunedModel)
class FineTunedModelAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("__str__", "base_model", "owner_role", "job", "created_on")
    list_filter = ("base_model", "owner_role")
    search_fields = ("name", "schema__name", "schema__database__name")
    fields = ("schema", "name", "base_model", "owner_role", "job", "adapter_path", "metrics", "created_on")
