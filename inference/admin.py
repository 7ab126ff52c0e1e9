from __future__ import annotations

from django.contrib import admin

from inference.models import InferenceServer
from studio.admin_site import RoleAdmin


@admin.register(InferenceServer)
class InferenceServerAdmin(RoleAdmin):
    view_role = change_role = "SYSADMIN"
    list_display = ("name", "url", "base_model", "backend", "registered_on")
    list_filter = ("backend", "base_model")
    search_fields = ("name", "base_model")
