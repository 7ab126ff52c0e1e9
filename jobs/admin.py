from django.contrib import admin

from jobs.models import FineTuneJob


@admin.register(FineTuneJob)
class FineTuneJobAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "progress", "base_model", "final_model_name", "created_on")
    list_filter = ("status", "base_model")
