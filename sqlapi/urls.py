from django.urls import path

from sqlapi import views

app_name = "sqlapi"
# Mounted at api/v2/ (project/urls.py). Snowflake's paths have no trailing slash.
urlpatterns = [
    path("statements", views.submit, name="submit"),
    path("statements/<str:handle>", views.status, name="status"),
    path("statements/<str:handle>/cancel", views.cancel, name="cancel"),
]
