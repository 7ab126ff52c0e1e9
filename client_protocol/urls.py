from django.urls import path, re_path

from client_protocol import chunks, query_views, session_views

app_name = "client_protocol"
# Mounted at the site's root, where Snowflake's clients look (project/urls.py). No trailing slashes.
urlpatterns = [
    path("session/v1/login-request", session_views.login, name="login"),
    path("session/token-request", session_views.renew, name="renew"),
    path("session/heartbeat", session_views.heartbeat, name="heartbeat"),
    path("session", session_views.logout, name="logout"),
    path("telemetry/send", session_views.telemetry, name="telemetry"),
    path("queries/v1/query-request", query_views.query, name="query"),
    path("queries/v1/abort-request", query_views.abort, name="abort"),
    path("queries/<str:query_id>/result", query_views.result, name="result"),
    # A large result's chunks, fetched without the session's token: each URL is signed (chunks.py).
    path("queries/<uuid:query_id>/chunks/<int:number>", chunks.chunk, name="chunk"),
    path("queries/<str:query_id>/abort-request", query_views.abort_query, name="abort-query"),
    # The 5.x connector asks for /monitoring/queries//<id>.
    re_path(r"^monitoring/queries/+(?P<query_id>[0-9a-fA-F-]{36})$", query_views.monitoring, name="monitoring"),
]
