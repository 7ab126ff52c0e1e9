"""No endpoint answers an anonymous request: every URL the app routes redirects to the login page or
refuses with 401/403/405."""
from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Pages anyone may open: signing in needs no account.
PUBLIC = {"/accounts/login/", "/admin/login/"}
# Snowflake's client protocol answers every request with HTTP 200 and says in the body whether it
# succeeded (client_protocol/envelope.py); sign-in itself is its public door, refused without a password.
PROTOCOL = {"/session/v1/login-request", "/session/token-request", "/session/heartbeat", "/session",
            "/telemetry/send", "/queries/v1/query-request", "/queries/v1/abort-request",
            "/queries/00000000-0000-0000-0000-000000000000/result",
            "/queries/00000000-0000-0000-0000-000000000000/abort-request",
            "/queries/00000000-0000-0000-0000-000000000000/chunks/1"}


def routes(resolver=None, prefix: str = "") -> list[str]:
    """Every routed path, with sample values for its parameters."""
    resolver = resolver or get_resolver()
    paths = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            paths += routes(entry, route)
        elif isinstance(entry, URLPattern):
            paths.append(route)
    samples = {"<str:job_id>": "ft_x", "<str:handle>": "00000000-0000-0000-0000-000000000000",
               "<path:object_id>": "1", "<str:stage>": "~", "<int:pk>": "1", "<str:app_label>": "access",
               "<path:stage>": "~", "<int:token_id>": "1", "<int:token_pk>": "1", "<ident:database>": "DB",
               "<ident:schema>": "S", "<ident:table>": "T", "<ident:name>": "DB.S.M",
               "<str:query_id>": "00000000-0000-0000-0000-000000000000",
               "<uuid:query_id>": "00000000-0000-0000-0000-000000000000", "<int:number>": "1"}
    concrete = []
    for path in paths:
        if path.startswith("^") or "(?P" in path:  # the admin's regex routes: covered by the admin's own pages
            continue
        for key, value in samples.items():
            path = path.replace(key, value)
        if "<" not in path:
            concrete.append("/" + path.lstrip("/"))
    return sorted(set(concrete))


def test_the_app_routes_the_pages_we_expect():
    paths = routes()
    assert {"/", "/worksheets/", "/api/v2/statements", "/account/tokens/", "/admin/"} <= set(paths), paths


@pytest.mark.parametrize("path", [p for p in routes() if p not in PUBLIC])
def test_an_anonymous_request_is_refused(client, db, path):
    if path in PROTOCOL and not path.endswith("/chunks/1"):  # chunks are refused by status: no signature
        if path.endswith("/result"):
            answer = client.get(path)
        else:
            answer = client.post(path + ("?delete=true" if path == "/session" else ""), "{}",
                                 content_type="application/json")
        assert answer.status_code == 200 and answer.json()["success"] is False, (path, answer.content)
        assert answer.json()["code"] in ("390111", "390100", "390400"), (path, answer.json())
        return
    for method in (client.get, client.post):
        response = method(path, follow=True)
        if response.redirect_chain:  # wherever it sends an anonymous user, it ends at a sign-in page
            assert "login" in response.request["PATH_INFO"], (path, response.redirect_chain)
            assert b'name="password"' in response.content
        else:
            assert response.status_code in (400, 401, 403, 404, 405), (path, response.status_code)
            assert response.status_code != 404 or path.startswith("/admin/"), (path, "404 before authentication")
