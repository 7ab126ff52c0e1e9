"""The real server (``python -m inference_server``) driven through huggingface_hub's InferenceClient."""
from __future__ import annotations

import json

import pytest
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.inference._generated.types import TextGenerationOutput

from inference_server.tests._support import get_json, move_in, post_json, sse_events
from inference_server.tests.conftest import (
    ADAPTER_TEMPLATE,
    BASE_NAME,
    DIR_ADAPTER,
    FOREIGN_ADAPTER,
    LATE_ADAPTER,
    NEW_TOKENS_LIMIT,
    STATIC_ADAPTER,
    make_adapter,
)

PROMPT = "The support ticket says the printer is on fire. Category:"
MESSAGES = [{"role": "user", "content": "My printer is on fire, what category is this?"}]


def _visible_text(tokens) -> str:
    return "".join(t.text for t in tokens if not t.special)


def test_health_info_and_models(server_url, models):
    status, body = get_json(server_url + "/health")
    assert status == 200

    status, info = get_json(server_url + "/info")
    assert status == 200
    assert info["model_id"] == BASE_NAME
    assert info["model_dtype"] == "torch.float32"
    assert info["model_device_type"] == "cpu"
    positions = json.loads((models.base / "config.json").read_text())["max_position_embeddings"]
    assert info["max_total_tokens"] == positions and info["max_input_tokens"] == positions - 1
    assert info["max_concurrent_requests"] == 32
    assert info["max_new_tokens_limit"] == NEW_TOKENS_LIMIT
    assert info["router"] and info["version"]
    assert {DIR_ADAPTER, STATIC_ADAPTER} <= set(info["adapters"])
    assert FOREIGN_ADAPTER not in info["adapters"]
    assert "adapters_dir" not in info and str(models.root) not in json.dumps(info)  # test_auth.py: no path at all

    status, listing = get_json(server_url + "/v1/models")
    assert status == 200 and listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert ids[0] == BASE_NAME
    assert {DIR_ADAPTER, STATIC_ADAPTER} <= set(ids)
    assert FOREIGN_ADAPTER not in ids
    assert all(m["object"] == "model" for m in listing["data"])


def test_adapters_change_the_output_and_greedy_is_deterministic(client):
    base = client.text_generation(PROMPT, max_new_tokens=8)
    tuned = client.text_generation(PROMPT, max_new_tokens=8, adapter_id=DIR_ADAPTER)
    tuned_again = client.text_generation(PROMPT, max_new_tokens=8, adapter_id=DIR_ADAPTER)
    static = client.text_generation(PROMPT, max_new_tokens=8, adapter_id=STATIC_ADAPTER)
    base_again = client.text_generation(PROMPT, max_new_tokens=8, adapter_id=BASE_NAME)  # base name = base model
    assert base and tuned and static
    assert tuned != base and static != base and static != tuned
    assert tuned_again == tuned
    assert base_again == base  # the adapters did not leak into base-model requests


def test_details(client):
    out = client.text_generation(PROMPT, max_new_tokens=6, adapter_id=DIR_ADAPTER, details=True,
                                 decoder_input_details=True)
    assert isinstance(out, TextGenerationOutput)
    details = out.details
    assert details.finish_reason == "length"
    assert details.generated_tokens == 6 == len(details.tokens)
    assert details.seed is None  # greedy
    assert _visible_text(details.tokens) == out.generated_text
    assert all(t.logprob <= 0 and isinstance(t.id, int) for t in details.tokens)
    # the prompt's tokens, the first without a logprob
    assert "".join(t.text for t in details.prefill) == PROMPT
    assert details.prefill[0].logprob is None and all(t.logprob <= 0 for t in details.prefill[1:])

    plain = client.text_generation(PROMPT, max_new_tokens=6, adapter_id=DIR_ADAPTER)
    assert plain == out.generated_text

    full = client.text_generation(PROMPT, max_new_tokens=6, adapter_id=DIR_ADAPTER, return_full_text=True)
    assert full == PROMPT + plain


def test_sampling_is_seeded(client):
    kwargs = dict(max_new_tokens=8, adapter_id=DIR_ADAPTER, do_sample=True, temperature=1.5, seed=1234, details=True)
    first = client.text_generation(PROMPT, **kwargs)
    second = client.text_generation(PROMPT, **kwargs)
    assert first.details.seed == 1234
    assert first.generated_text == second.generated_text
    greedy = client.text_generation(PROMPT, max_new_tokens=8, adapter_id=DIR_ADAPTER)
    other = [client.text_generation(PROMPT, **{**kwargs, "seed": s}).generated_text for s in (1, 2, 3)]
    assert any(text != greedy for text in other + [first.generated_text])


def test_stop_sequence(client):
    full = client.text_generation(PROMPT, max_new_tokens=10, adapter_id=STATIC_ADAPTER, details=True)
    texts = [t.text for t in full.details.tokens]
    stop = texts[3]
    expected = "".join(texts[: texts.index(stop) + 1])
    out = client.text_generation(PROMPT, max_new_tokens=10, adapter_id=STATIC_ADAPTER, stop=[stop], details=True)
    assert out.details.finish_reason == "stop_sequence"
    assert out.generated_text == expected and out.generated_text.endswith(stop)  # TGI keeps the stop sequence


def test_streaming_tokens_concatenate_to_the_final_text(client, server_url):
    stream = list(client.text_generation(PROMPT, max_new_tokens=7, adapter_id=DIR_ADAPTER, stream=True,
                                         details=True))
    assert len(stream) == 7
    assert all(e.generated_text is None and e.details is None for e in stream[:-1])
    last = stream[-1]
    assert last.details.finish_reason == "length" and last.details.generated_tokens == 7
    assert last.details.input_length > 0
    assert _visible_text(e.token for e in stream) == last.generated_text
    assert last.generated_text == client.text_generation(PROMPT, max_new_tokens=7, adapter_id=DIR_ADAPTER)

    pieces = list(client.text_generation(PROMPT, max_new_tokens=7, stream=True))  # token texts only
    assert "".join(pieces) == client.text_generation(PROMPT, max_new_tokens=7)

    # the raw protocol: one `data:` event per token, TGI's shape
    events = sse_events(server_url + "/generate_stream",
                        {"inputs": PROMPT, "parameters": {"max_new_tokens": 3, "adapter_id": DIR_ADAPTER}})
    assert [e["index"] for e in events] == [1, 2, 3]
    assert set(events[0]["token"]) == {"id", "text", "logprob", "special"}
    assert events[-1]["generated_text"] == "".join(e["token"]["text"] for e in events)


def test_compat_route_switches_on_stream(server_url):
    status, body = post_json(server_url + "/", {"inputs": PROMPT, "parameters": {"max_new_tokens": 3}})
    assert status == 200 and isinstance(body, list) and body[0]["generated_text"]
    events = sse_events(server_url + "/", {"inputs": PROMPT, "parameters": {"max_new_tokens": 3}, "stream": True})
    assert events[-1]["generated_text"] == body[0]["generated_text"]


def test_chat_completion_with_adapter_uses_the_adapters_template(client, models):
    from transformers import AutoTokenizer

    out = client.chat_completion(MESSAGES, model=DIR_ADAPTER, max_tokens=6, temperature=0)
    assert out.object == "chat.completion"
    assert out.model == DIR_ADAPTER
    choice = out.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert out.usage.completion_tokens == 6

    adapter_tokenizer = AutoTokenizer.from_pretrained(str(models.adapter_dirs[DIR_ADAPTER]))
    assert adapter_tokenizer.chat_template == ADAPTER_TEMPLATE
    prompt = adapter_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert out.usage.prompt_tokens == len(adapter_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert out.usage.total_tokens == out.usage.prompt_tokens + 6
    # the same as /generate on the adapter-templated prompt
    assert choice.message.content == client.text_generation(prompt, max_new_tokens=6, adapter_id=DIR_ADAPTER)

    # TGI-style selection: adapter_id in the body, no model (the client then sends a placeholder)
    by_body = client.chat_completion(MESSAGES, max_tokens=6, temperature=0, extra_body={"adapter_id": DIR_ADAPTER})
    assert by_body.choices[0].message.content == choice.message.content and by_body.model == DIR_ADAPTER


def test_chat_completion_with_base_model(client, models):
    from transformers import AutoTokenizer

    base = client.chat_completion(MESSAGES, model=BASE_NAME, max_tokens=6, temperature=0)
    tgi = client.chat_completion(MESSAGES, model="tgi", max_tokens=6, temperature=0)
    tuned = client.chat_completion(MESSAGES, model=DIR_ADAPTER, max_tokens=6, temperature=0)
    assert base.model == BASE_NAME
    assert base.choices[0].message.content == tgi.choices[0].message.content
    assert base.choices[0].message.content != tuned.choices[0].message.content
    base_tokenizer = AutoTokenizer.from_pretrained(str(models.base))
    prompt = base_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert "You are a helpful AI assistant" in prompt  # the base template's default system prompt
    assert base.usage.prompt_tokens == len(base_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert base.usage.prompt_tokens > tuned.usage.prompt_tokens


def test_chat_stream_and_stop(client):
    full = client.chat_completion(MESSAGES, model=STATIC_ADAPTER, max_tokens=10, temperature=0)
    text = full.choices[0].message.content
    chunks = list(client.chat_completion(MESSAGES, model=STATIC_ADAPTER, max_tokens=10, temperature=0, stream=True,
                                         stream_options={"include_usage": True}))
    content_chunks = [c for c in chunks if c.choices]
    assert all(c.object == "chat.completion.chunk" and c.model == STATIC_ADAPTER for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == text
    assert content_chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in content_chunks[:-1])
    assert chunks[-1].usage.completion_tokens == 10

    # OpenAI semantics: the stop sequence ends the message and is not part of it
    stop = text[len(text) // 2: len(text) // 2 + 3]
    cut = text[: text.index(stop)]
    stopped = client.chat_completion(MESSAGES, model=STATIC_ADAPTER, max_tokens=10, temperature=0, stop=[stop])
    assert stopped.choices[0].message.content == cut
    assert stopped.choices[0].finish_reason == "stop"
    streamed = list(client.chat_completion(MESSAGES, model=STATIC_ADAPTER, max_tokens=10, temperature=0,
                                           stop=[stop], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == cut
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_unknown_adapter_is_an_error_naming_it(client, server_url):
    with pytest.raises(Exception) as generation_error:
        client.text_generation(PROMPT, max_new_tokens=3, adapter_id="DEMO.PUBLIC.NO_SUCH_MODEL")
    assert "DEMO.PUBLIC.NO_SUCH_MODEL" in str(generation_error.value)

    with pytest.raises(HfHubHTTPError) as chat_error:
        client.chat_completion(MESSAGES, model="DEMO.PUBLIC.NO_SUCH_MODEL", max_tokens=3)
    assert chat_error.value.response.status_code == 404
    assert "DEMO.PUBLIC.NO_SUCH_MODEL" in str(chat_error.value)

    status, body = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {
        "max_new_tokens": 3, "adapter_id": "demo.public.support_triage"}})  # ids match exactly
    assert status == 422 and body["error_type"] == "validation"  # TGI's routes: an invalid parameter
    assert "demo.public.support_triage" in body["error"]

    status, body = post_json(server_url + "/generate_stream", {"inputs": PROMPT, "parameters": {
        "max_new_tokens": 3, "adapter_id": "NOPE"}})
    assert status == 422 and body == {"error": body["error"], "error_type": "validation"} and "NOPE" in body["error"]

    # an adapter trained for another base model is not served by this one
    status, body = post_json(server_url + "/v1/chat/completions", {"model": FOREIGN_ADAPTER, "messages": MESSAGES})
    assert status == 404 and body["error_type"] == "adapter_not_found"
    assert FOREIGN_ADAPTER in body["error"] and "some-other-model" in body["error"]


def test_adapter_added_after_start_is_served_without_restart(client, models, server_url):
    with pytest.raises(Exception) as before:
        client.text_generation(PROMPT, max_new_tokens=5, adapter_id=LATE_ADAPTER)
    assert LATE_ADAPTER in str(before.value)

    staged = make_adapter(models.base, models.staging / "late", LATE_ADAPTER, BASE_NAME, seed=7)
    move_in(staged, models.adapters_dir / "trained-later")  # what the trainer does when a job finishes

    late = client.text_generation(PROMPT, max_new_tokens=5, adapter_id=LATE_ADAPTER)
    assert late and late != client.text_generation(PROMPT, max_new_tokens=5)
    chat = client.chat_completion(MESSAGES, model=LATE_ADAPTER, max_tokens=4, temperature=0)
    assert chat.model == LATE_ADAPTER and chat.choices[0].message.content
    assert LATE_ADAPTER in get_json(server_url + "/info")[1]["adapters"]

    # retrained under the same id: the new weights answer
    retrained = make_adapter(models.base, models.staging / "late-v2", LATE_ADAPTER, BASE_NAME, seed=8)
    move_in(models.adapters_dir / "trained-later", models.staging / "late-v1")
    move_in(retrained, models.adapters_dir / "trained-later")
    late_v2 = client.text_generation(PROMPT, max_new_tokens=5, adapter_id=LATE_ADAPTER)
    assert late_v2 and late_v2 != late

    # removed (dropped): no longer served, and never answered by the base model instead
    move_in(models.adapters_dir / "trained-later", models.staging / "late-v2-dropped")
    status, body = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {
        "max_new_tokens": 5, "adapter_id": LATE_ADAPTER}})
    assert status == 422 and LATE_ADAPTER in body["error"]  # an unknown adapter_id on TGI's own route
    assert LATE_ADAPTER not in get_json(server_url + "/info")[1]["adapters"]
    assert client.text_generation(PROMPT, max_new_tokens=5, adapter_id=DIR_ADAPTER)  # others unaffected


def test_validation_errors(client, server_url):
    from huggingface_hub.errors import ValidationError

    with pytest.raises(ValidationError) as too_many:
        client.text_generation(PROMPT, max_new_tokens=NEW_TOKENS_LIMIT + 1)
    assert f"`max_new_tokens` must be <= {NEW_TOKENS_LIMIT}" in str(too_many.value)

    status, body = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 5000}})
    assert status == 422 and body["error_type"] == "validation" and "max_new_tokens" in body["error"]
    status, body = post_json(server_url + "/generate", {"inputs": "", "parameters": {"max_new_tokens": 5}})
    assert (status, body) == (422, {"error": "`inputs` cannot be empty", "error_type": "validation"})
    status, body = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {"temperature": -1}})
    assert status == 422 and "temperature" in body["error"]
    status, body = post_json(server_url + "/v1/chat/completions",
                             {"model": BASE_NAME, "messages": MESSAGES, "max_tokens": NEW_TOKENS_LIMIT + 1})
    assert status == 422 and body["error_type"] == "validation"
    status, body = post_json(server_url + "/v1/chat/completions", {"model": BASE_NAME, "messages": []})
    assert status == 422 and "messages" in body["error"]
