"""No endpoint answers an anonymous request: every URL the app routes redirects to the login page or
refuses with 401/403/405."""
from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Pages anyone may open: signing in needs no account.
PUBLIC = {"/accounts/login/", "/admin/login/"}


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
               "<ident:schema>": "S", "<ident:table>": "T", "<ident:name>": "DB.S.M"}
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
    for method in (client.get, client.post):
        response = method(path, follow=True)
        if response.redirect_chain:  # wherever it sends an anonymous user, it ends at a sign-in page
            assert "login" in response.request["PATH_INFO"], (path, response.redirect_chain)
            assert b'name="password"' in response.content
        else:
            assert response.status_code in (400, 401, 403, 404, 405), (path, response.status_code)
            assert response.status_code != 404 or path.startswith("/admin/"), (path, "404 before authentication")
