"""Snowflake's Cortex REST API for COMPLETE, POST /api/v2/cortex/inference:complete, over HTTP with
httpx2 (the HTTP client of the openai SDK and huggingface_hub), against the stack's real inference
server and a model fine-tuned by the stack's real worker."""
from __future__ import annotations

import httpx2
import pytest

from inference import api
from inference.models import CompletionUsage
from inference.tests.gateway_support import gateway, sse_data, web  # noqa: F401 (fixtures)

PATH = "/api/v2/cortex/inference:complete"
PROMPT = "Ticket 12: My order arrived broken."


def post(gateway, body: dict, user: str = "gw_ana", token: str | None = None) -> httpx2.Response:
    token = token or gateway.tokens[user]
    return httpx2.post(gateway.url + PATH, json=body, timeout=60,
                       headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})


def body(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


def test_without_stream_it_answers_completes_text_and_usage(gateway):
    expected = gateway.complete("gw_ana", gateway.model, PROMPT, max_tokens=20)

    response = post(gateway, body(gateway.model, max_tokens=20, stream=False))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == gateway.model
    assert answer["choices"][0]["message"]["content"] == expected["choices"][0]["messages"]
    assert answer["usage"] == expected["usage"]
    assert isinstance(answer["created"], int) and answer["id"]
    row = CompletionUsage.objects.get(request_id=answer["id"])
    assert (row.entry_point, row.user_name, row.role, row.status) == ("cortex_rest", "gw_ana", "GW_ANALYST", "SUCCESS")
    assert (row.input_tokens, row.output_tokens) == (answer["usage"]["prompt_tokens"],
                                                     answer["usage"]["completion_tokens"])


def test_by_default_it_streams_server_sent_events_with_the_usage_last(gateway):
    expected = gateway.complete("gw_ana", gateway.model, PROMPT, max_tokens=20)

    with httpx2.stream("POST", gateway.url + PATH, json=body(gateway.model, max_tokens=20), timeout=60,
                       headers={"Authorization": f"Bearer {gateway.tokens['gw_ana']}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_data("".join(response.iter_text()))

    assert len(events) > 2
    assert {(e["id"], e["model"]) for e in events} == {(events[0]["id"], gateway.model)}
    assert "".join(e["choices"][0]["delta"]["content"] for e in events) == expected["choices"][0]["messages"]
    assert all(e["usage"] == {} for e in events[:-1])
    assert events[-1]["usage"] == expected["usage"]
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    row = CompletionUsage.objects.get(request_id=events[0]["id"])
    assert (row.status, row.output_tokens) == ("SUCCESS", expected["usage"]["completion_tokens"])


def test_a_message_without_a_role_is_the_users_and_max_output_tokens_is_max_tokens(gateway):
    expected = gateway.complete("gw_ana", "tiny-llama", PROMPT, max_tokens=6)
    response = post(gateway, {"model": "tiny-llama", "messages": [{"content": PROMPT}], "max_output_tokens": 6,
                              "stream": False})
    assert response.json()["choices"][0]["message"]["content"] == expected["choices"][0]["messages"]


def test_a_role_without_usage_on_the_model_is_403_naming_the_privilege(gateway):
    response = post(gateway, body(gateway.model, stream=False), user="gw_otto")
    assert response.status_code == 403
    assert response.json()["message"] == "Insufficient privileges to operate on model 'GATEWAY_REPLIES'"
    assert response.json()["code"] == "003001"


def test_a_role_without_cortex_user_is_403_even_for_a_base_model(gateway):
    response = post(gateway, body("tiny-llama"), user="gw_nina")
    assert response.status_code == 403
    assert "the SNOWFLAKE.CORTEX_USER database role is required" in response.json()["message"]


def test_a_bad_token_is_401(gateway):
    response = post(gateway, body(gateway.model), token="sft_nope")
    assert response.status_code == 401
    assert response.json()["message"] == api.UNAUTHORIZED
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_model_is_404(gateway):
    response = post(gateway, body("GW.PUBLIC.MISSING", stream=False))
    assert response.status_code == 404
    assert response.json()["message"] == "Model 'GW.PUBLIC.MISSING' does not exist or not authorized."


@pytest.mark.parametrize("request_body, field, message", [
    ({"messages": [{"content": "hi"}]}, "model", "'model' is required"),
    ({"model": "tiny-llama", "messages": "hi"}, "messages", "'messages' is required"),
    ({"model": "tiny-llama", "messages": [{"content": 3}]}, "messages[0].content", "'messages[0].content' must be"),
    ({"model": "tiny-llama", "messages": [{"content": "hi"}], "tools": []}, "tools", "'tools' is not supported"),
    ({"model": "tiny-llama", "messages": [{"content": "hi"}], "stream": "yes"}, "stream",
     "'stream' must be true or false"),
])
def test_bad_input_is_400_naming_the_field(gateway, request_body, field, message):
    response = post(gateway, request_body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["message"].startswith(message)


def test_the_limits_apply_with_their_settings_named(gateway, settings):
    settings.GATEWAY_REQUESTS_PER_MINUTE = 1
    settings.GATEWAY_MAX_REQUEST_BYTES = 500
    _, token = gateway.new_user()
    too_large = post(gateway, {"model": "tiny-llama", "messages": [{"content": "x" * 600}]}, token=token)
    assert too_large.status_code == 413
    assert "(STUDIO_GATEWAY_MAX_REQUEST_BYTES)" in too_large.json()["message"]

    assert post(gateway, body("tiny-llama", max_tokens=4, stream=False), token=token).status_code == 200
    limited = post(gateway, body("tiny-llama", max_tokens=4, stream=False), token=token)
    assert limited.status_code == 429
    assert "the limit is 1 request per minute (STUDIO_GATEWAY_REQUESTS_PER_MINUTE)" in limited.json()["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
