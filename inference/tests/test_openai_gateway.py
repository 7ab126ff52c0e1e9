"""The OpenAI-compatible gateway (/v1/chat/completions, /v1/models) through clients no one here wrote:
the openai SDK and huggingface_hub's InferenceClient, against the web app served over HTTP, with the
stack's real inference server and a model fine-tuned by the stack's real worker behind it."""
from __future__ import annotations

import httpx2
import openai
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from access.models import AccessEvent
from inference import api
from inference.models import CompletionUsage, InferenceServer
from inference.tests.gateway_support import gateway, sse_data, web  # noqa: F401 (fixtures)

PROMPT = "Ticket 9: The discount code is rejected."


def sdk(gateway, user: str = "gw_ana", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.tokens[user], max_retries=0, **kw)


def ask(client: openai.OpenAI, model: str, prompt: str = PROMPT, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], **kw)


def test_the_sdk_gets_completes_answer_from_a_fine_tuned_model(gateway):
    expected = gateway.complete("gw_ana", gateway.model, PROMPT, max_tokens=24)

    response = ask(sdk(gateway), gateway.model, max_tokens=24, temperature=0)

    assert response.object == "chat.completion"
    assert response.model == gateway.model
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == expected["choices"][0]["messages"]
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert response.usage.completion_tokens == expected["usage"]["completion_tokens"]
    assert response.usage.total_tokens == expected["usage"]["total_tokens"]


def test_a_base_model_answers_too(gateway):
    expected = gateway.complete("gw_ana", "tiny-llama", PROMPT, max_tokens=12)
    response = ask(sdk(gateway), "tiny-llama", max_tokens=12)
    assert response.model == "tiny-llama"
    assert response.choices[0].message.content == expected["choices"][0]["messages"]


def test_streaming_with_the_sdk_gives_the_same_text_then_the_usage(gateway):
    expected = gateway.complete("gw_ana", gateway.model, PROMPT, max_tokens=24)

    chunks = list(ask(sdk(gateway), gateway.model, max_tokens=24, stream=True,
                      stream_options={"include_usage": True}))

    assert all(c.object == "chat.completion.chunk" and c.model == gateway.model for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected["choices"][0]["messages"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == {
        **expected["usage"], "completion_tokens_details": None, "prompt_tokens_details": None}
    assert all(c.usage is None for c in chunks[:-1])


def test_the_raw_stream_is_server_sent_events_ending_with_done(gateway):
    response = httpx2.post(gateway.url + "/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {gateway.tokens['gw_ana']}"},
                          json={"model": gateway.model, "messages": [{"role": "user", "content": PROMPT}],
                                "max_tokens": 8, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])  # no usage chunk unless stream_options ask for it
    assert response.text.endswith("data: [DONE]\n\n")


def test_huggingface_inference_client_chat_completion_with_the_fine_tuned_model(gateway):
    expected = gateway.complete("gw_ana", gateway.model, PROMPT, max_tokens=16)
    client = InferenceClient(base_url=gateway.url, api_key=gateway.tokens["gw_ana"], timeout=60)
    messages = [{"role": "user", "content": PROMPT}]

    output = client.chat_completion(messages, model=gateway.model, max_tokens=16)
    streamed = list(client.chat_completion(messages, model=gateway.model, max_tokens=16, stream=True))

    assert output.choices[0].message.content == expected["choices"][0]["messages"]
    assert output.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert streamed_text == expected["choices"][0]["messages"]


def test_models_lists_only_the_models_the_user_may_call(gateway):
    def ids(user):
        return {m.id for m in sdk(gateway, user).models.list()}

    assert {gateway.model, "tiny-llama"} <= ids("gw_ana")
    assert "tiny-llama" in ids("gw_otto") and gateway.model not in ids("gw_otto")
    assert ids("gw_nina") == set()  # no SNOWFLAKE.CORTEX_USER: nothing to call
    assert "llama3-8b" not in ids("admin")  # in the catalog, but not installed


def test_a_role_without_usage_on_the_model_is_refused_naming_the_privilege(gateway):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask(sdk(gateway, "gw_otto"), gateway.model, max_tokens=8)
    assert refused.value.status_code == 403
    assert refused.value.body["message"] == "Insufficient privileges to operate on model 'GATEWAY_REPLIES'"
    assert refused.value.body["code"] == "insufficient_privileges"
    event = AccessEvent.objects.filter(user_name="gw_otto", action="COMPLETE").latest("at")
    assert (event.outcome, event.object_name, event.entry_point) == ("REFUSED", gateway.model, "api")
    assert not CompletionUsage.objects.filter(user_name="gw_otto").exists()


def test_a_role_without_cortex_user_is_refused_naming_the_database_role(gateway):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask(sdk(gateway, "gw_nina"), gateway.model, max_tokens=8)
    assert refused.value.body["message"] == (
        "Insufficient privileges to operate on function 'COMPLETE': the SNOWFLAKE.CORTEX_USER database role is "
        "required; ask an ACCOUNTADMIN to run GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE GW_NOBODY.")


@pytest.mark.parametrize("key", [None, "sft_not-a-real-token"])
def test_a_missing_or_bad_token_is_401(gateway, key):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0,
                           default_headers={"Authorization": f"Bearer {key}" if key else ""})
    with pytest.raises(openai.AuthenticationError) as refused:
        ask(client, gateway.model)
    assert refused.value.status_code == 401
    assert refused.value.body["message"] == api.UNAUTHORIZED
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_an_unknown_model_is_404_naming_it(gateway):
    with pytest.raises(openai.NotFoundError) as missing:
        ask(sdk(gateway), "GW.PUBLIC.NO_SUCH_MODEL")
    assert missing.value.body["message"] == "Model 'GW.PUBLIC.NO_SUCH_MODEL' does not exist or not authorized."
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError) as missing:
        ask(sdk(gateway), "gpt-4o")
    assert missing.value.body["message"] == ("Model 'gpt-4o' does not exist: name a base model or a fine-tuned "
                                             "model by its qualified name database.schema.model.")


@pytest.mark.parametrize("kwargs, param, message", [
    ({"temperature": 5}, None, "COMPLETE option temperature must be a number from 0 to 2."),
    ({"extra_body": {"tools": []}}, "tools", "'tools' is not supported by this gateway"),
    ({"n": 2}, "n", "'n' must be 1: one choice per request."),
    ({"max_tokens": 0}, "max_tokens", "'max_tokens' must be a positive integer."),
    ({"max_tokens": 5000}, "max_tokens", "COMPLETE option max_tokens 5000 is over the limit of 4096 tokens "
                                         "(STUDIO_GATEWAY_MAX_TOKENS)."),
])
def test_bad_input_is_400_naming_the_field(gateway, kwargs, param, message):
    with pytest.raises(openai.BadRequestError) as bad:
        ask(sdk(gateway), gateway.model, **kwargs)
    assert bad.value.body["message"].startswith(message)
    assert bad.value.body["param"] == param


def test_messages_must_be_a_non_empty_list_of_roles_and_contents(gateway):
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=gateway.model, messages=[])
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=gateway.model, messages=[{"role": "tool", "content": "x"}])
    assert bad.value.body["param"] == "messages[0].role"
    assert bad.value.body["message"] == "'messages[0].role' must be one of system, user, assistant."


def test_too_many_requests_a_minute_is_429_with_the_limit_and_retry_after(gateway, settings):
    settings.GATEWAY_REQUESTS_PER_MINUTE = 2
    name, token = gateway.new_user()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    for _ in range(2):
        ask(client, "tiny-llama", max_tokens=4)

    with pytest.raises(openai.RateLimitError) as limited:
        ask(client, "tiny-llama", max_tokens=4)

    message = limited.value.body["message"]
    assert message.startswith(f"Rate limit exceeded for user '{name}': 2 requests in the last minute; the limit "
                              "is 2 requests per minute (STUDIO_GATEWAY_REQUESTS_PER_MINUTE). Retry in ")
    retry_after = int(limited.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and message.endswith(f"Retry in {retry_after} seconds.")
    assert CompletionUsage.objects.filter(user_name=name).count() == 2  # the refused one used nothing
    # Another user is not held back by this one's requests.
    _, other = gateway.new_user()
    ask(openai.OpenAI(base_url=gateway.url + "/v1", api_key=other, max_retries=0), "tiny-llama", max_tokens=4)


def test_too_many_tokens_a_minute_is_429(gateway, settings):
    settings.GATEWAY_TOKENS_PER_MINUTE = 10
    name, token = gateway.new_user()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    spent = ask(client, "tiny-llama", max_tokens=4).usage.total_tokens
    assert spent >= 10
    with pytest.raises(openai.RateLimitError) as limited:
        ask(client, "tiny-llama", max_tokens=4)
    assert limited.value.body["message"].startswith(
        f"Token rate limit exceeded for user '{name}': {spent} tokens in the last minute; the limit is 10 tokens "
        "per minute (STUDIO_GATEWAY_TOKENS_PER_MINUTE). Retry in ")


def test_a_body_over_the_size_limit_is_413(gateway, settings):
    settings.GATEWAY_MAX_REQUEST_BYTES = 2000
    with pytest.raises(openai.APIStatusError) as too_large:
        ask(sdk(gateway), gateway.model, prompt="x" * 3000)
    assert too_large.value.status_code == 413
    assert too_large.value.body["message"].startswith("Request body too large: ")
    assert too_large.value.body["message"].endswith(" bytes, over the limit of 2000 bytes "
                                                    "(STUDIO_GATEWAY_MAX_REQUEST_BYTES).")


def test_an_unreachable_inference_server_is_503(gateway):
    from supervision.processes import free_port

    server = InferenceServer.objects.get(base_model="tiny-llama")
    url = server.url
    InferenceServer.objects.filter(pk=server.pk).update(url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(openai.InternalServerError) as unavailable:
            ask(sdk(gateway), "tiny-llama", max_tokens=4)
        with pytest.raises(HfHubHTTPError) as unavailable_stream:
            list(InferenceClient(base_url=gateway.url, api_key=gateway.tokens["gw_ana"]).chat_completion(
                [{"role": "user", "content": PROMPT}], model="tiny-llama", max_tokens=4, stream=True))
    finally:
        InferenceServer.objects.filter(pk=server.pk).update(url=url)
    assert unavailable.value.status_code == 503
    assert "for base model 'tiny-llama' is not reachable" in unavailable.value.body["message"]
    assert unavailable_stream.value.response.status_code == 503
