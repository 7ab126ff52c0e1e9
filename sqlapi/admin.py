from django.contrib import admin

from sqlapi.models import Statement


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):
    list_display = ("handle", "user", "status", "created_on", "finished_on")
    list_filter = ("status",)
    search_fields = ("handle", "text", "user__username")
    raw_id_fields = ("user", "parent")
