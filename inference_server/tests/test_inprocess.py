"""create_app() in-process: concurrency limits, health while generating, eos handling."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request

import pytest

from inference_server.tests._support import AUTH, TOKEN, get_json, post_json
from inference_server.tests.conftest import BASE_NAME, free_port

PROMPT = "Hello there, how are you"


@pytest.fixture(scope="module")
def app(models):
    from inference_server import create_app

    return create_app(models.base, BASE_NAME, token=TOKEN, max_concurrent_requests=1, max_new_tokens_limit=1024)


@pytest.fixture(scope="module")
def url(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_overloaded_and_health_while_generating(app, url, monkeypatch):
    engine = app.state.engine
    started, release = threading.Event(), threading.Event()
    real_generate = engine.generate

    def slow_generate(*args, **kwargs):
        started.set()
        release.wait(20)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engine, "generate", slow_generate)
    results = []
    first = threading.Thread(target=lambda: results.append(
        post_json(url + "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 4}})))
    first.start()
    try:
        assert started.wait(20)
        t0 = time.monotonic()
        assert get_json(url + "/health", timeout=5)[0] == 200  # the event loop is free while a request decodes
        assert time.monotonic() - t0 < 2
        assert get_json(url + "/info", timeout=5)[1]["max_concurrent_requests"] == 1
        for path, body in (("/generate", {"inputs": PROMPT}), ("/generate_stream", {"inputs": PROMPT}),
                           ("/v1/chat/completions", {"model": BASE_NAME, "messages": [{"role": "user", "content": "x"}]})):
            assert post_json(url + path, body) == (429, {"error": "Model is overloaded", "error_type": "overloaded"})
    finally:
        release.set()
        first.join(30)
    status, body = results[0]
    assert status == 200 and body["generated_text"]
    monkeypatch.undo()
    assert post_json(url + "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}})[0] == 200


def test_disconnected_stream_frees_its_slot(url):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 1000}}
    request = urllib.request.Request(url + "/generate_stream", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **AUTH})
    response = urllib.request.urlopen(request, timeout=30)
    assert response.readline().startswith(b"data:")
    response.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 15
    while True:
        status, _ = post_json(url + "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}})
        if status == 200:
            break
        assert status == 429 and time.monotonic() < deadline
        time.sleep(0.1)


def test_eos_ends_generation_and_is_not_in_the_text(app):
    from inference_server.generation import SamplingParams

    engine = app.state.engine
    base = engine.base_target
    ids = engine.encode(base, PROMPT)
    full = engine.generate(base, ids, SamplingParams(max_new_tokens=8))
    eos_id = full.tokens[2]["id"]
    first = next(i for i, t in enumerate(full.tokens) if t["id"] == eos_id)
    target = dataclasses.replace(base, eos_ids=base.eos_ids | {eos_id}, special_ids=base.special_ids | {eos_id})
    out = engine.generate(target, ids, SamplingParams(max_new_tokens=8))
    assert out.finish_reason == "eos_token"
    assert out.generated_tokens == first + 1  # the eos token is counted, as in TGI
    assert out.tokens[-1]["special"] is True
    assert out.text == "".join(t["text"] for t in full.tokens[:first])


def test_eos_token_of_the_real_tokenizer(app):
    engine = app.state.engine
    eos = engine.tokenizer.eos_token_id
    assert eos in engine.base_target.eos_ids and eos in engine.base_target.special_ids


def test_base_requests_on_a_server_with_adapters_match_a_plain_base_model(url, server_url):
    """disable_adapter() really gives the base model: same greedy text as a server that never loaded one."""
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 8}}
    plain = post_json(url + "/generate", body)
    with_adapters = post_json(server_url + "/generate", body)
    assert plain[0] == with_adapters[0] == 200
    assert plain[1]["generated_text"] == with_adapters[1]["generated_text"]
