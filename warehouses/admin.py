from __future__ import annotations

from django.contrib import admin

from access.console import RoleAdmin
from warehouses.models import Warehouse


@admin.register(Warehouse)
class WarehouseAdmin(RoleAdmin):
    view_role = change_role = "SYSADMIN"
    list_display = ("name", "size", "devices", "hosts", "concurrency", "created_on")
    search_fields = ("name",)
