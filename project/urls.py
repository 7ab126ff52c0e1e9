"""The site's URL map: the Studio's pages, the admin console, the SQL API, the stage API and the inference
APIs, each app's routes included from its own urls module."""
from django.contrib import admin
from django.urls import include, path, register_converter

from web.converters import IdentifierConverter

# <ident:name>: a database, schema, table, stage or model name as one segment, in the pages and the APIs.
register_converter(IdentifierConverter, "ident")

urlpatterns = [
    path("", include("studio.urls")),
    path("admin/", admin.site.urls),
    path("api/v2/stages/", include("catalog.stage_urls")),
    path("api/v2/", include("sqlapi.urls")),
    path("", include("inference.urls")),
    path("federation/v1/shares/", include("sharing.urls")),
    path("federation/v1/replication/", include("replication.urls")),
    path("federation/v1/", include("organization.urls")),  # between deployments, signed (organization/inbound.py)
    path("", include("client_protocol.urls")),  # Snowflake's connectors: /session/…, /queries/…  # /v1/chat/completions, /v1/models, /api/v2/cortex/inference:complete
]
