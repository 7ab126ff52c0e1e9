"""Bodies no API can take are 400s (413 over the size limit) in each API's own JSON error shape, naming
the problem and where it is, never a 500 or Django's HTML error page: the SQL API (POST
/api/v2/statements), the OpenAI-compatible gateway (POST /v1/chat/completions) and the Cortex REST API
(POST /api/v2/cortex/inference:complete), through real HTTP (web/request_body.py)."""
from __future__ import annotations

import json
import uuid

import httpx2
import pytest
from django.contrib.auth import get_user_model

from access import tokens
from access.bootstrap import bootstrap
from tests.support.web import serve_web_app

SQL_API, OPENAI, CORTEX = "/api/v2/statements", "/v1/chat/completions", "/api/v2/cortex/inference:complete"
GATEWAYS = (OPENAI, CORTEX)
CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hello"}]}
NESTED = "The request body's JSON nests arrays or objects too deeply to be read."
SURROGATE = ("The request body is not valid Unicode: '{}' holds a lone surrogate (an unpaired \\ud800-\\udfff "
             "escape), which encodes no character.")


@pytest.fixture(scope="module")
def api(live_db):
    """The web app over HTTP and a user's API token (committed: the app answers on its own thread)."""
    bootstrap(password="admin-test-password", demo=False)
    user = get_user_model().objects.create_user(f"bodies_{uuid.uuid4().hex[:8]}", password="a long password")
    secret = tokens.create_token(user, "request body tests")[1]
    with serve_web_app() as url, httpx2.Client(base_url=url, timeout=60,
                                               headers={"Authorization": f"Bearer {secret}"}) as client:
        yield client


def post(api, path: str, body: bytes) -> httpx2.Response:
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


def refusal(response: httpx2.Response, path: str) -> tuple[str, str | None]:
    """(message, field) from the API's own error shape, after checking it is that shape and JSON."""
    assert response.headers["content-type"] == "application/json", response.text[:300]
    assert "<html" not in response.text.lower()
    body = response.json()
    if path == OPENAI:
        error = body["error"]
        assert error["type"] == "invalid_request_error"
        assert error["code"] == ("request_too_large" if response.status_code == 413 else "invalid_request")
        return error["message"], error["param"]
    assert body["code"] == ("413001" if path == CORTEX and response.status_code == 413 else "390142")
    if path == CORTEX:
        assert body["request_id"]
    return body["message"], body.get("field")


# What each body is refused with: (message, the SQL API's field, the gateways' field).
BAD_BODIES = {
    "nested 100,000 deep": (b"[" * 100_000, NESTED, "body", None),
    "nested objects": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, NESTED, "body", None),
    "not UTF-8": (b'{"statement": "\xff"}', "The request body is not UTF-8: byte 0xff at position 15 does not decode.",
                  "body", None),
    "an array": (b"[1, 2]", "The request body must be a JSON object, not an array.", "body", None),
    "a string": (b'"SELECT 1"', "The request body must be a JSON object, not a string.", "body", None),
    "empty": (b"", "The request body is empty: it must be a JSON object.", "body", None),
    "not JSON": (b"{statement: 1}", "The request body is not valid JSON: Expecting property name enclosed in double "
                                    "quotes: line 1 column 2 (char 1).", "body", None),
    "NaN": (b'{"timeout": NaN}', "The request body is not valid JSON: NaN is not a JSON number.", "body", None),
}


@pytest.mark.parametrize("path", [SQL_API, OPENAI, CORTEX])
@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_body_no_api_can_read_is_a_400_naming_the_problem(api, path, case):
    raw, message, sql_field, gateway_field = BAD_BODIES[case]

    response = post(api, path, raw)

    assert response.status_code == 400
    assert refusal(response, path) == (message, sql_field if path == SQL_API else gateway_field)


@pytest.mark.parametrize("path, body, field", [
    (SQL_API, {"statement": "SELECT '\ud800'"}, "statement"),
    (SQL_API, {"statement": "SELECT 1", "parameters": {"QUERY_TAG": ["ok", "\udfff"]}}, "parameters.QUERY_TAG[1]"),
    (OPENAI, {**CHAT, "messages": [{"role": "user", "content": "hi \ud800"}]}, "messages[0].content"),
    (OPENAI, {**CHAT, "model": "\ud800"}, "model"),
    (CORTEX, {**CHAT, "messages": [{"content": "ok"}, {"content": [{"type": "text", "text": "\ud83d"}]}]},
     "messages[1].content[0].text"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field_that_holds_it(api, path, body, field):
    response = post(api, path, json.dumps(body).encode())  # json.dumps writes it as the escape \ud800

    assert response.status_code == 400
    assert refusal(response, path) == (SURROGATE.format(field), field)


def test_a_surrogate_pair_is_text_like_any_other(api):
    response = post(api, SQL_API, json.dumps({"statement": "SELECT '\U0001f600' AS smile"}).encode())

    assert response.status_code == 200, response.text
    assert response.json()["data"] == [["\U0001f600"]]


def test_a_sql_api_body_over_djangos_upload_limit_is_a_413_in_the_sql_apis_shape(api):
    # DATA_UPLOAD_MAX_MEMORY_SIZE's default, 2.5 MiB: over it, request.body used to answer Django's HTML 400.
    statement = "SELECT '" + "x" * (2_621_440 + 10) + "'"
    response = post(api, SQL_API, json.dumps({"statement": statement}).encode())

    assert response.status_code == 413
    assert refusal(response, SQL_API) == (
        f"Request body too large: {len(statement) + 17} bytes, over the limit of 2621440 bytes "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE).", "body")


@pytest.mark.parametrize("path", GATEWAYS)
def test_a_gateway_body_over_its_limit_is_a_413_in_its_shape(api, path, settings):
    settings.GATEWAY_MAX_REQUEST_BYTES = 2000
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}).encode()

    response = post(api, path, body)

    assert response.status_code == 413
    assert refusal(response, path)[0] == (f"Request body too large: {len(body)} bytes, over the limit of 2000 bytes "
                                          "(STUDIO_GATEWAY_MAX_REQUEST_BYTES).")
