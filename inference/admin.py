from __future__ import annotations

from django.contrib import admin

from access.console import ReadOnlyRoleAdmin, RoleAdmin
from inference.models import CompletionUsage, InferenceServer


@admin.register(InferenceServer)
class InferenceServerAdmin(RoleAdmin):
    view_role = change_role = "SYSADMIN"
    list_display = ("name", "url", "base_model", "backend", "registered_on")
    list_filter = ("backend", "base_model")
    search_fields = ("name", "base_model")


@admin.register(CompletionUsage)
class CompletionUsageAdmin(ReadOnlyRoleAdmin):
    """Tokens per COMPLETE call and user, as SNOWFLAKE.ACCOUNT_USAGE.CORTEX_REST_API_USAGE_HISTORY (HTTP)
    and CORTEX_FUNCTIONS_USAGE_HISTORY (SQL, by hour) show them in SQL."""

    view_role = "ACCOUNTADMIN"
    list_display = ("started_on", "user_name", "role", "model_name", "entry_point", "input_tokens", "output_tokens",
                    "duration_ms", "status")
    # A date filter rather than date_hierarchy: that one's SELECT DISTINCT of truncated dates calls a
    # Python function per row on SQLite (70 ms at 20,000 calls); this one runs no query.
    list_filter = (("started_on", admin.DateFieldListFilter), "entry_point", "status", "base_model")
    search_fields = ("user_name", "model_name", "request_id")
    fields = ("started_on", "user_name", "role", "warehouse", "model_name", "base_model", "entry_point", "request_id",
              "input_tokens", "output_tokens", "duration_ms", "status", "message")
    readonly_fields = fields
