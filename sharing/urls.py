from django.urls import path

from sharing import provider_views

app_name = "sharing"
# Mounted at federation/v1/shares/ (project/urls.py); every view checks the caller's signature.
urlpatterns = [
    path("<str:share>", provider_views.manifest, name="manifest"),
    path("<str:share>/models/<str:schema>/<str:model>/files/<path:path>", provider_views.model_file, name="file"),
]
