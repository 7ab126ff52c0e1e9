from django.contrib import admin

from access.console import ReadOnlyRoleAdmin
from sqlapi.models import Statement


@admin.register(Statement)
class StatementAdmin(ReadOnlyRoleAdmin):
    """Every user's SQL text: for the ACCOUNTADMIN only."""

    view_role = "ACCOUNTADMIN"
    list_display = ("handle", "user", "status", "created_on", "finished_on")
    list_filter = ("status",)
    search_fields = ("handle", "text", "user__username")
    raw_id_fields = ("user", "parent")
