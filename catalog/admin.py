"""The console's catalog pages: read-only databases, schemas, tables and stages (SQL changes them);
base models whose description, learning rate, training price and enabled flag an ACCOUNTADMIN may edit."""
from __future__ import annotations

from django.contrib import admin

from access.console import ReadOnlyRoleAdmin, RoleAdmin
from catalog.models import BaseModel, Database, Schema, SchemaObject, Stage


@admin.register(BaseModel)
class BaseModelAdmin(RoleAdmin):
    view_role, change_role = "SYSADMIN", "ACCOUNTADMIN"
    list_display = ("name", "enabled", "installed", "context_window", "max_prompt_tokens", "max_completion_tokens",
                    "learning_rate", "training_credits_per_million_tokens")
    list_filter = ("enabled",)
    search_fields = ("name", "description")
    fields = ("name", "enabled", "hf_repo", "description", "context_window", "max_prompt_tokens",
              "max_completion_tokens", "training_data_limit_bytes", "learning_rate",
              "training_credits_per_million_tokens")
    readonly_fields = ("name", "hf_repo", "context_window", "max_prompt_tokens", "max_completion_tokens",
                       "training_data_limit_bytes")
    actions = ["enable_selected", "disable_selected"]

    @admin.action(description="Enable selected base models", permissions=["change"])
    def enable_selected(self, request, queryset) -> None:
        self.message_user(request, f"Enabled {queryset.update(enabled=True)} base model(s).")

    @admin.action(description="Disable selected base models (their fine-tuned models stop answering)",
                  permissions=["change"])
    def disable_selected(self, request, queryset) -> None:
        self.message_user(request, f"Disabled {queryset.update(enabled=False)} base model(s); COMPLETE refuses "
                                   "them and every model fine-tuned from them, and FINETUNE refuses them.")

    @admin.display(boolean=True, description="Installed")
    def installed(self, obj: BaseModel) -> bool:
        return obj.is_installed

    def has_add_permission(self, request) -> bool:
        return False  # the catalog comes from the seed; weights from `manage.py` commands

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Database)
class DatabaseAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("name", "owner_role", "comment", "created_on")
    search_fields = ("name",)


@admin.register(Schema)
class SchemaAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("__str__", "database", "owner_role", "created_on")
    list_filter = ("database",)
    search_fields = ("name", "database__name")


@admin.register(SchemaObject)
class SchemaObjectAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("__str__", "kind", "owner_role", "created_on")
    list_filter = ("kind", "schema__database")
    search_fields = ("name", "schema__name", "schema__database__name")


@admin.register(Stage)
class StageAdmin(ReadOnlyRoleAdmin):
    view_role = "SYSADMIN"
    list_display = ("__str__", "owner_role", "comment", "created_on")
    search_fields = ("name", "schema__name", "schema__database__name")
