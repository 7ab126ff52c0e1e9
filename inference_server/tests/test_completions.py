"""``POST /v1/completions`` (OpenAI's completions API, TGI-style) on the real server."""
from __future__ import annotations

import pytest

from inference_server.tests._support import TOKEN, post_json, sse_events
from inference_server.tests.conftest import BASE_NAME, DIR_ADAPTER, FOREIGN_ADAPTER, STATIC_ADAPTER

PROMPT = "The support ticket says the printer is on fire. Category:"
OTHER_PROMPT = "Invoice 1234 was charged twice. Category:"


def _generate(server_url: str, prompt: str, max_new_tokens: int, adapter_id: str | None = None) -> dict:
    params = {"max_new_tokens": max_new_tokens, "details": True}
    if adapter_id:
        params["adapter_id"] = adapter_id
    status, body = post_json(server_url + "/generate", {"inputs": prompt, "parameters": params})
    assert status == 200, body
    return body


def _complete(server_url: str, **body) -> dict:
    status, out = post_json(server_url + "/v1/completions", {"temperature": 0, **body})
    assert status == 200, out
    return out


def _prompt_tokens(models, prompt: str, adapter_id: str | None = None) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models.adapter_dirs[adapter_id] if adapter_id else models.base))
    return len(tokenizer(prompt)["input_ids"])


@pytest.mark.parametrize("model", [BASE_NAME, DIR_ADAPTER])
def test_greedy_completion_equals_generate(server_url, models, model):
    adapter = None if model == BASE_NAME else model
    expected = _generate(server_url, PROMPT, 8, adapter)
    out = _complete(server_url, model=model, prompt=PROMPT, max_tokens=8)
    assert out["object"] == "text_completion" and out["model"] == model
    assert out["id"] and isinstance(out["created"], int) and out["system_fingerprint"]
    [choice] = out["choices"]
    assert choice == {"index": 0, "text": expected["generated_text"], "logprobs": None, "finish_reason": "length"}
    prompt_tokens = _prompt_tokens(models, PROMPT, adapter)
    assert out["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 8, "total_tokens": prompt_tokens + 8}
    assert expected["details"]["generated_tokens"] == 8


def test_base_model_aliases_and_adapters_differ(server_url):
    base = _complete(server_url, model=BASE_NAME, prompt=PROMPT, max_tokens=6)["choices"][0]["text"]
    assert _complete(server_url, model="tgi", prompt=PROMPT, max_tokens=6)["choices"][0]["text"] == base
    no_model = _complete(server_url, prompt=PROMPT, max_tokens=6)
    assert no_model["choices"][0]["text"] == base and no_model["model"] == BASE_NAME
    static = _complete(server_url, model=STATIC_ADAPTER, prompt=PROMPT, max_tokens=6)
    assert static["model"] == STATIC_ADAPTER and static["choices"][0]["text"] != base
    by_body = _complete(server_url, prompt=PROMPT, max_tokens=6, adapter_id=STATIC_ADAPTER)  # TGI-style
    assert by_body["choices"][0]["text"] == static["choices"][0]["text"]


def test_stream_concatenates_to_the_same_text_and_ends_with_done(server_url, models):
    full = _complete(server_url, model=DIR_ADAPTER, prompt=PROMPT, max_tokens=7)
    events = sse_events(server_url + "/v1/completions",
                        {"model": DIR_ADAPTER, "prompt": PROMPT, "max_tokens": 7, "temperature": 0, "stream": True,
                         "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert all(e["object"] == "text_completion" and e["model"] == DIR_ADAPTER for e in events[:-1])
    assert all(c["choices"][0]["index"] == 0 and c["choices"][0]["logprobs"] is None for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == full["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    usage_events = [e for e in events[:-1] if not e["choices"]]
    assert [e["usage"] for e in usage_events] == [full["usage"]]


def test_stop_sequence_is_cut_off_streaming_or_not(server_url):
    details = _generate(server_url, PROMPT, 10, STATIC_ADAPTER)["details"]
    texts = [t["text"] for t in details["tokens"]]
    stop = texts[3]
    expected = "".join(texts[: texts.index(stop)])  # OpenAI-style: without the stop sequence
    body = {"model": STATIC_ADAPTER, "prompt": PROMPT, "max_tokens": 10, "stop": [stop]}
    out = _complete(server_url, **body)
    assert out["choices"][0]["text"] == expected and out["choices"][0]["finish_reason"] == "stop"
    events = sse_events(server_url + "/v1/completions", {**body, "temperature": 0, "stream": True})
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == expected
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_list_of_prompts_gets_one_choice_each(server_url, models):
    singles = [_complete(server_url, prompt=p, max_tokens=5) for p in (PROMPT, OTHER_PROMPT)]
    out = _complete(server_url, prompt=[PROMPT, OTHER_PROMPT], max_tokens=5)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert [c["text"] for c in out["choices"]] == [s["choices"][0]["text"] for s in singles]
    prompt_tokens = _prompt_tokens(models, PROMPT) + _prompt_tokens(models, OTHER_PROMPT)
    assert out["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 10,
                            "total_tokens": prompt_tokens + 10}


def test_streaming_several_prompts_is_refused(server_url):
    status, body = post_json(server_url + "/v1/completions",
                             {"prompt": [PROMPT, OTHER_PROMPT], "max_tokens": 3, "stream": True})
    assert status == 422 and body["error_type"] == "validation"
    assert "single prompt" in body["error"]


def test_unknown_and_foreign_adapters_are_404_naming_them(server_url):
    for model in ("DEMO.PUBLIC.NO_SUCH_MODEL", FOREIGN_ADAPTER):
        for stream in (False, True):
            status, body = post_json(server_url + "/v1/completions",
                                     {"model": model, "prompt": PROMPT, "max_tokens": 3, "stream": stream})
            assert status == 404, body
            assert body["error_type"] == "adapter_not_found" and model in body["error"]


@pytest.mark.parametrize("body, message", [
    ({"max_tokens": 3}, "`prompt`"),
    ({"prompt": "", "max_tokens": 3}, "cannot be empty"),
    ({"prompt": PROMPT, "max_tokens": 3, "temperature": -1}, "`temperature`"),
    ({"prompt": PROMPT, "max_tokens": 3, "top_p": 2}, "`top_p`"),
    ({"prompt": PROMPT, "max_tokens": 10_000}, "`max_new_tokens`"),
    ({"prompt": PROMPT, "max_tokens": 3, "suffix": "x"}, "`suffix`"),
])
def test_validation_errors(server_url, body, message):
    status, out = post_json(server_url + "/v1/completions", body)
    assert status == 422 and out["error_type"] == "validation" and message in out["error"], out


def test_seeded_sampling_is_reproducible(server_url):
    body = {"prompt": PROMPT, "max_tokens": 8, "temperature": 0.9, "top_p": 0.95, "seed": 7}
    first = post_json(server_url + "/v1/completions", body)
    second = post_json(server_url + "/v1/completions", body)
    assert first[0] == second[0] == 200 and first[1]["choices"] == second[1]["choices"]


def test_openai_sdk(server_url):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server_url + "/v1", api_key=TOKEN)
    out = client.completions.create(model=DIR_ADAPTER, prompt=PROMPT, max_tokens=6, temperature=0)
    assert out.choices[0].text == _generate(server_url, PROMPT, 6, DIR_ADAPTER)["generated_text"]
    stream = client.completions.create(model=DIR_ADAPTER, prompt=PROMPT, max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == out.choices[0].text
