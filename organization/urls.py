from django.urls import path

from organization import views

app_name = "organization"
# Mounted at federation/v1/ (project/urls.py): requests between deployments of the organization.
urlpatterns = [
    path("account", views.account, name="account"),
]
