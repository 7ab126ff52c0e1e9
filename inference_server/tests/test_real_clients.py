"""Clients no one here wrote, against the real server: huggingface_hub's InferenceClient and the openai SDK.

test_server.py walks InferenceClient through each route's features and test_completions.py the openai SDK
through /v1/completions. These tests check what the clients themselves make of the answers: streamed and
plain answers agree token for token, the two SDKs agree with each other, the clients' own error classes
carry the server's message, and clients running at the same time get the answers they get alone.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.errors import ValidationError as HfValidationError

from inference_server.tests._support import TOKEN
from inference_server.tests.conftest import BASE_NAME, DIR_ADAPTER, FOREIGN_ADAPTER, STATIC_ADAPTER

openai = pytest.importorskip("openai")

# The prompts test_prompt_parity.py checked for wide greedy margins on every model here, so answers stay
# the same when a batching server decodes them alongside other requests.
PROMPT = "The support ticket says the printer is on fire. Category:"
MESSAGES = [{"role": "user", "content": "Summarise: the server is down."}]
NEW_TOKENS = 10
UNKNOWN = "DEMO.PUBLIC.NO_SUCH_MODEL"


def not_found_message(model: str) -> str:
    return f"Adapter '{model}' not found on this server (base model '{BASE_NAME}')"


@pytest.fixture()
def oai(server_url):
    # no retries: an error must reach the test as the server sent it, at once
    return openai.OpenAI(base_url=server_url + "/v1", api_key=TOKEN, max_retries=0, timeout=60)


def _tokens(tokens) -> list[tuple]:
    return [(t.id, t.text, t.special) for t in tokens]


def _usage(usage) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


# -- huggingface_hub.InferenceClient -------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter_id", [None, DIR_ADAPTER, STATIC_ADAPTER])
def test_text_generation_stream_matches_details_token_for_token(client, models, adapter_id):
    from transformers import AutoTokenizer

    out = client.text_generation(PROMPT, adapter_id=adapter_id, max_new_tokens=NEW_TOKENS, details=True)
    details = out.details
    assert details.finish_reason == "length" and details.generated_tokens == NEW_TOKENS == len(details.tokens)
    assert details.seed is None
    assert "".join(t.text for t in details.tokens if not t.special) == out.generated_text

    stream = list(client.text_generation(PROMPT, adapter_id=adapter_id, max_new_tokens=NEW_TOKENS, stream=True,
                                         details=True))
    assert [e.index for e in stream] == list(range(1, NEW_TOKENS + 1))
    assert _tokens(e.token for e in stream) == _tokens(details.tokens)
    assert [e.token.logprob for e in stream] == pytest.approx([t.logprob for t in details.tokens], abs=1e-5)
    assert all(e.generated_text is None and e.details is None for e in stream[:-1])
    last = stream[-1]
    assert last.generated_text == out.generated_text
    assert (last.details.finish_reason, last.details.generated_tokens, last.details.seed) == ("length", NEW_TOKENS,
                                                                                              None)
    tokenizer = AutoTokenizer.from_pretrained(str(models.base))
    assert last.details.input_length == len(tokenizer(PROMPT)["input_ids"])


def test_text_generation_stream_ends_at_the_stop_sequence_like_the_plain_answer(client):
    texts = [t.text for t in client.text_generation(PROMPT, adapter_id=DIR_ADAPTER, max_new_tokens=NEW_TOKENS,
                                                    details=True).details.tokens]
    stop = texts[4]
    kwargs = dict(adapter_id=DIR_ADAPTER, max_new_tokens=NEW_TOKENS, stop=[stop], details=True)
    plain = client.text_generation(PROMPT, **kwargs)
    stream = list(client.text_generation(PROMPT, stream=True, **kwargs))
    assert plain.details.finish_reason == stream[-1].details.finish_reason == "stop_sequence"
    assert plain.generated_text == "".join(texts[: texts.index(stop) + 1])  # TGI keeps the stop sequence
    assert stream[-1].generated_text == plain.generated_text
    assert _tokens(e.token for e in stream) == _tokens(plain.details.tokens)


@pytest.mark.parametrize("model", [BASE_NAME, DIR_ADAPTER])
def test_chat_completion_stream_and_plain_answer_agree(client, model):
    plain = client.chat_completion(MESSAGES, model=model, max_tokens=NEW_TOKENS, temperature=0)
    assert plain.model == model
    answer = plain.choices[0].message.content
    assert answer and plain.choices[0].finish_reason == "length"
    assert plain.usage.completion_tokens == NEW_TOKENS

    chunks = list(client.chat_completion(MESSAGES, model=model, max_tokens=NEW_TOKENS, temperature=0, stream=True,
                                         stream_options={"include_usage": True}))
    *content, usage = chunks
    assert all(c.model == model and c.id == chunks[0].id for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in content) == answer
    assert [c.choices[0].finish_reason for c in content] == [None] * (len(content) - 1) + ["length"]
    assert usage.choices == []
    assert _usage(usage.usage) == _usage(plain.usage)  # the same numbers, in the client's stream type


def test_chat_completion_seeded_sampling_streams_the_same_answer(client):
    kwargs = dict(model=DIR_ADAPTER, max_tokens=NEW_TOKENS, temperature=1.3, seed=4321)
    plain = client.chat_completion(MESSAGES, **kwargs).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or ""
                       for c in client.chat_completion(MESSAGES, stream=True, **kwargs))
    assert streamed == plain
    assert plain != client.chat_completion(MESSAGES, model=DIR_ADAPTER, max_tokens=NEW_TOKENS,
                                           temperature=0).choices[0].message.content


def test_unknown_adapter_raises_the_clients_error_with_the_servers_message(client):
    # TGI's routes: an unknown adapter_id is an invalid parameter, which the client raises as its ValidationError
    for kwargs in ({}, {"stream": True}, {"stream": True, "details": True}, {"details": True}):
        with pytest.raises(HfValidationError) as error:
            result = client.text_generation(PROMPT, adapter_id=UNKNOWN, max_new_tokens=3, **kwargs)
            list(result) if kwargs.get("stream") else result
        assert str(error.value) == not_found_message(UNKNOWN), kwargs
        assert error.value.__cause__.response.status_code == 422

    # the OpenAI route: an unknown model, 404
    for stream in (False, True):
        with pytest.raises(HfHubHTTPError) as error:
            result = client.chat_completion(MESSAGES, model=UNKNOWN, max_tokens=3, stream=stream)
            list(result) if stream else result
        assert error.value.response.status_code == 404
        assert str(error.value).endswith(not_found_message(UNKNOWN))


# -- the openai SDK ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [BASE_NAME, DIR_ADAPTER, STATIC_ADAPTER])
def test_openai_chat_with_and_without_stream(oai, client, model):
    out = oai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=NEW_TOKENS, temperature=0)
    assert out.object == "chat.completion" and out.model == model and out.id.startswith("chatcmpl-")
    [choice] = out.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert out.usage.completion_tokens == NEW_TOKENS
    assert out.usage.total_tokens == out.usage.prompt_tokens + NEW_TOKENS
    # the other SDK, same request, same answer
    hf = client.chat_completion(MESSAGES, model=model, max_tokens=NEW_TOKENS, temperature=0)
    assert hf.choices[0].message.content == choice.message.content
    assert hf.usage.prompt_tokens == out.usage.prompt_tokens

    chunks = list(oai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=NEW_TOKENS, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    *content, usage = chunks
    assert all(c.object == "chat.completion.chunk" and c.model == model and c.id == chunks[0].id for c in chunks)
    assert content[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in content) == choice.message.content
    assert [c.choices[0].finish_reason for c in content] == [None] * (len(content) - 1) + ["length"]
    assert usage.choices == [] and usage.usage == out.usage

    # without include_usage: no usage chunk
    plain_stream = list(oai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=NEW_TOKENS,
                                                    temperature=0, stream=True))
    assert all(c.choices and c.usage is None for c in plain_stream)
    assert "".join(c.choices[0].delta.content or "" for c in plain_stream) == choice.message.content


def test_openai_models_list_has_the_base_and_the_adapters(oai):
    listing = list(oai.models.list())
    ids = [m.id for m in listing]
    assert ids[0] == BASE_NAME
    assert {DIR_ADAPTER, STATIC_ADAPTER} <= set(ids)
    assert FOREIGN_ADAPTER not in ids and UNKNOWN not in ids  # trained for another base model
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" and m.owned_by == BASE_NAME for m in listing)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_unknown_model_is_not_found(oai, stream):
    with pytest.raises(openai.NotFoundError) as error:
        oai.chat.completions.create(model=UNKNOWN, messages=MESSAGES, max_tokens=3, stream=stream)
    assert error.value.status_code == 404
    # the SDK keeps the server's `error` field as the error's body
    assert error.value.body == not_found_message(UNKNOWN)
    assert error.value.response.json()["error_type"] == "adapter_not_found"

    with pytest.raises(openai.NotFoundError) as foreign:
        oai.chat.completions.create(model=FOREIGN_ADAPTER, messages=MESSAGES, max_tokens=3, stream=stream)
    assert FOREIGN_ADAPTER in foreign.value.body and "some-other-model" in foreign.value.body


# -- both at once --------------------------------------------------------------------------------------------------

def test_clients_running_together_get_the_answers_they_get_alone(server_url):
    """Plain and streamed requests from both SDKs, for the base model and two adapters, at the same time
    (one batch on a batching server): each answer equals the same request made alone."""

    def hf_generate(adapter_id, stream):
        c = InferenceClient(base_url=server_url, api_key=TOKEN, timeout=120)
        if stream:
            return [e.token.id for e in c.text_generation(PROMPT, adapter_id=adapter_id, max_new_tokens=NEW_TOKENS,
                                                          stream=True, details=True)]
        out = c.text_generation(PROMPT, adapter_id=adapter_id, max_new_tokens=NEW_TOKENS, details=True)
        return [t.id for t in out.details.tokens]

    def oai_chat(model, stream):
        c = openai.OpenAI(base_url=server_url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
        kwargs = dict(model=model, messages=MESSAGES, max_tokens=NEW_TOKENS, temperature=0)
        if stream:
            return "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **kwargs)
                           if ch.choices)
        return c.chat.completions.create(**kwargs).choices[0].message.content

    jobs = [(fn, target, stream) for fn, targets in ((hf_generate, (None, DIR_ADAPTER, STATIC_ADAPTER)),
                                                    (oai_chat, (BASE_NAME, DIR_ADAPTER, STATIC_ADAPTER)))
            for target in targets for stream in (False, True)]
    alone = [fn(target, stream) for fn, target, stream in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        together = list(pool.map(lambda job: job[0](job[1], job[2]), jobs))
    assert together == alone
    # streamed == plain, and each model answers differently, so a mix-up of adapters in a batch would show
    assert len({str(answer) for answer in alone}) == 6
