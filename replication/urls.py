from django.urls import path

from replication import provider_views

app_name = "replication"
# Mounted at federation/v1/replication/ (project/urls.py); every view checks the caller's signature.
urlpatterns = [
    path("databases/<str:database>", provider_views.manifest, name="manifest"),
    path("databases/<str:database>/tables/<str:schema>/<str:table>/<str:fingerprint>", provider_views.table_file,
         name="table"),
    path("databases/<str:database>/models/<str:schema>/<str:model>/files/<path:path>", provider_views.model_file,
         name="file"),
    path("databases/<str:database>/promoted", provider_views.promoted, name="promoted"),
]
