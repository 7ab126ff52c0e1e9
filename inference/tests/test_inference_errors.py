"""What a client reads when an inference server cannot answer, over real HTTP through the SQL API's
COMPLETE, the OpenAI-compatible API and the Cortex REST API:

- max_tokens has one limit, STUDIO_GATEWAY_MAX_TOKENS: COMPLETE refuses more with a 400 naming it before
  any server is asked, and the embedded server `manage.py serve` starts (the stack's) takes as much;
- an inference server is named in every error, never located: no URL, no host:port, whatever the server
  or the connection library said (inference/addresses.py). A server of our own, real HTTP on loopback,
  answers each way a server can fail: a refusal quoting its own address, an HTML error page, an error in
  the middle of a stream, a connection cut mid-stream, an adapter that will not load, and no server at all.
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from access import tokens
from access.bootstrap import bootstrap
from catalog import accountdata
from catalog.models import BaseModel
from inference.models import CompletionUsage, InferenceServer
from models_registry.models import Deployment, FineTunedModel
from supervision.processes import free_port
from tests.support.cortex import admin_session, sql_literal, sql_value
from tests.support.web import serve_web_app

SQL_API, OPENAI, CORTEX = "/api/v2/statements", "/v1/chat/completions", "/api/v2/cortex/inference:complete"
SUFFIX = uuid.uuid4().hex[:6]
LEAKY = f"leaky-{SUFFIX}"  # a base model only the fake server below serves
SERVER = f"fake-{SUFFIX}"
MESSAGES = [{"role": "user", "content": "Hello"}]


class FakeServer(BaseHTTPRequestHandler):
    """An inference server that fails as `mode` says, quoting its own address where a server might."""

    mode = "validation"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Transfer_Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        here = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if self.path == "/adapters/load":
            error = {"error": f"adapter loader crashed on {here}", "error_type": "adapter_load_error"}
            return self._send(500, json.dumps(error).encode(), "application/json")
        if self.mode == "validation":
            error = {"error": f"Input validation error: `inputs` must have less than 8191 tokens (server {here}, "
                              f"{here}/v1/chat/completions)", "error_type": "validation"}
            return self._send(422, json.dumps(error).encode(), "application/json")
        if self.mode == "html":
            return self._send(500, f"<html><h1>Internal error at {here[7:]}</h1></html>".encode(), "text/html")
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": LEAKY, "system_fingerprint": "",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "logprobs": None,
                              "finish_reason": None}]}
        first = f"data: {json.dumps(chunk)}\n\n".encode()
        if self.mode == "mid-stream":
            error = {"error": f"CUDA out of memory on {here[7:]}", "error_type": "generation"}
            return self._send(200, first + f"data: {json.dumps(error)}\n\n".encode(), "text/event-stream")
        # "cut": one chunk of a chunked body, then the connection closes before the last chunk.
        self._send(200, f"{len(first):x}\r\n".encode() + first + b"\r\n", "text/event-stream",
                   Transfer_Encoding="chunked")
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def fake_server(live_db, tmp_path_factory):
    """The fake server registered for base model LEAKY (installed: its weights folder has the files the
    catalog looks for), a fine-tuned model of it, and a user whose role may call both."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    bootstrap(password="admin-test-password", demo=False)
    weights = settings.MODEL_STORE / "base" / LEAKY
    weights.mkdir(parents=True, exist_ok=True)
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"")
    BaseModel.objects.update_or_create(name=LEAKY, defaults={
        "context_window": 2048, "max_prompt_tokens": 1536, "max_completion_tokens": 512,
        "training_data_limit_bytes": 1024, "description": "served by a fake server (tests)"})
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    server = InferenceServer.objects.create(name=SERVER, url=url, base_model=LEAKY)
    database = f"LEAKDB_{SUFFIX}".upper()
    accountdata.create_database(database)
    tuned = FineTunedModel.objects.create(schema=accountdata.get_schema(database, "PUBLIC"), name="TUNED",
                                          base_model=LEAKY, owner_role="ACCOUNTADMIN",
                                          adapter_path=str(tmp_path_factory.mktemp("adapter")))
    role, user = f"LEAK_CALLER_{SUFFIX}".upper(), f"leak_{SUFFIX}"
    for statement in (f"CREATE ROLE {role}", f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {role}",
                      f"GRANT USAGE ON DATABASE {database} TO ROLE {role}",
                      f"GRANT USAGE ON SCHEMA {database}.PUBLIC TO ROLE {role}",
                      f"GRANT USAGE ON MODEL {tuned.qualified_name} TO ROLE {role}",
                      f"CREATE USER {user} PASSWORD = 'a long password' DEFAULT_ROLE = {role}",
                      f"GRANT ROLE {role} TO USER {user}"):
        sql_value(admin_session(), statement)
    secret = tokens.create_token(get_user_model().objects.get(username=user), "inference error tests")[1]
    try:
        with serve_web_app() as web:
            yield {"web": web, "token": secret, "server": server, "url": url, "tuned": tuned.qualified_name}
    finally:
        httpd.shutdown()


def mode(name: str) -> None:
    FakeServer.mode = name


def call(fake: dict, path: str, model: str, **fields) -> httpx2.Response:
    """A COMPLETE request to one entry point; the SQL API's runs SELECT SNOWFLAKE.CORTEX.COMPLETE."""
    headers = {"Authorization": f"Bearer {fake['token']}"}
    if path == SQL_API:
        options = json.dumps(fields or {"max_tokens": 8}).replace('"', "'")
        statement = (f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(model)}, "
                     f"[{{'role': 'user', 'content': 'Hello'}}], {options})")
        return httpx2.post(fake["web"] + path, json={"statement": statement}, headers=headers, timeout=60)
    body = {"model": model, "messages": MESSAGES, "max_tokens": 8, **fields}
    return httpx2.post(fake["web"] + path, json=body, headers=headers, timeout=60)


def message(response: httpx2.Response, path: str) -> str:
    body = response.json()
    return body["error"]["message"] if path == OPENAI else body["message"]


def assert_not_located(fake: dict, text: str) -> None:
    address = fake["url"].removeprefix("http://")
    assert address not in text, text
    assert f":{address.rsplit(':', 1)[1]}" not in text, text  # not even the port


ENTRY_POINTS = [SQL_API, OPENAI, CORTEX]
# The SQL API answers a failed statement 422, as Snowflake does; the HTTP APIs answer with the status.
SQL_STATUS = 422


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_a_refusal_quoting_the_servers_address_is_a_400_that_names_the_server_instead(fake_server, path):
    mode("validation")
    response = call(fake_server, path, LEAKY, stream=False) if path != SQL_API else call(fake_server, path, LEAKY)

    assert response.status_code == (SQL_STATUS if path == SQL_API else 400)
    assert message(response, path) == (
        f"Inference server '{SERVER}' refused the request for {LEAKY}: Input validation error: `inputs` must have "
        f"less than 8191 tokens (server '{SERVER}', '{SERVER}')")
    assert_not_located(fake_server, response.text)


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_an_html_error_page_is_a_502_with_its_status_not_the_url_it_came_from(fake_server, path):
    mode("html")
    response = call(fake_server, path, LEAKY, stream=False) if path != SQL_API else call(fake_server, path, LEAKY)

    assert response.status_code == (SQL_STATUS if path == SQL_API else 502)
    assert message(response, path) == f"Inference server '{SERVER}' refused the request for {LEAKY}: HTTP 500"
    assert_not_located(fake_server, response.text)


@pytest.mark.parametrize("path", [OPENAI, CORTEX])
@pytest.mark.parametrize("failure, expected", [
    ("mid-stream", f"Inference server '{SERVER}' failed while generating for {LEAKY}: CUDA out of memory on '{SERVER}'"),
    ("cut", f"Inference server '{SERVER}' for base model '{LEAKY}' went away while generating: "),
])
def test_a_stream_that_fails_midway_ends_with_an_error_event_naming_the_server(fake_server, path, failure, expected):
    mode(failure)
    response = call(fake_server, path, LEAKY, stream=True)

    assert response.status_code == 200
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    errors = [e["error"]["message"] if path == OPENAI else e["message"] for e in events
              if "error" in e or "code" in e]
    assert len(errors) == 1 and errors[0].startswith(expected), errors
    assert_not_located(fake_server, response.text)


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_no_server_listening_is_a_503_naming_the_server(fake_server, path):
    InferenceServer.objects.filter(pk=fake_server["server"].pk).update(url=f"http://127.0.0.1:{free_port()}")
    try:
        response = call(fake_server, path, LEAKY, stream=False) if path != SQL_API else call(fake_server, path, LEAKY)
        gone = InferenceServer.objects.get(pk=fake_server["server"].pk).url.removeprefix("http://")
    finally:
        InferenceServer.objects.filter(pk=fake_server["server"].pk).update(url=fake_server["url"])

    assert response.status_code == (SQL_STATUS if path == SQL_API else 503)
    assert message(response, path).startswith(f"Inference server '{SERVER}' for base model '{LEAKY}' is not reachable: ")
    assert gone not in response.text and gone.rsplit(":", 1)[1] not in response.text


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_an_adapter_the_server_will_not_load_is_an_error_without_the_servers_address(fake_server, path):
    Deployment.objects.filter(model__base_model=LEAKY).delete()  # each call tries to deploy it afresh
    response = (call(fake_server, path, fake_server["tuned"], stream=False) if path != SQL_API
                else call(fake_server, path, fake_server["tuned"]))

    assert response.status_code == (SQL_STATUS if path == SQL_API else 502)
    assert message(response, path) == (
        f"Model '{fake_server['tuned']}' could not be deployed on inference server '{SERVER}': adapter loader crashed "
        f"on '{SERVER}'. Once the cause is fixed, deploy it again with: python manage.py deploy {fake_server['tuned']}")
    assert_not_located(fake_server, response.text)
    # The model's page and the admin console show the same reason.
    assert Deployment.objects.get(model__base_model=LEAKY).reason == f"adapter loader crashed on '{SERVER}'"


# -- max_tokens: one limit ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def caller(stack_processes, live_db):
    """The stack's embedded server (started by `manage.py serve`, as bin/start starts it), the web app,
    and a user whose role may call the tiny Llama."""
    from conftest import register_tiny_llama

    bootstrap(password="admin-test-password", demo=False)
    register_tiny_llama()
    if not InferenceServer.objects.filter(url=stack_processes.inference_url).exists():
        InferenceServer.objects.create(name=f"embedded-tiny-llama-{SUFFIX}", url=stack_processes.inference_url,
                                       base_model="tiny-llama")
    role, user = f"LIMIT_CALLER_{SUFFIX}".upper(), f"limits_{SUFFIX}"
    for statement in (f"CREATE ROLE {role}", f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {role}",
                      f"CREATE USER {user} PASSWORD = 'a long password' DEFAULT_ROLE = {role}",
                      f"GRANT ROLE {role} TO USER {user}"):
        sql_value(admin_session(), statement)
    secret = tokens.create_token(get_user_model().objects.get(username=user), "max_tokens tests")[1]
    with serve_web_app() as web:
        yield {"web": web, "token": secret, "user": user, "url": stack_processes.inference_url}


LIMIT = settings.GATEWAY_MAX_TOKENS
OVER = (f"COMPLETE option max_tokens {LIMIT + 1} is over the limit of {LIMIT} tokens (STUDIO_GATEWAY_MAX_TOKENS).")


@pytest.mark.parametrize("path, field", [(OPENAI, "max_tokens"), (OPENAI, "max_completion_tokens"),
                                         (CORTEX, "max_tokens"), (CORTEX, "max_output_tokens")])
def test_max_tokens_over_the_limit_is_a_400_naming_it_and_its_setting_before_any_server_is_asked(caller, path, field):
    body = {"model": "tiny-llama", "messages": MESSAGES, field: LIMIT + 1, "stream": False}
    calls = CompletionUsage.objects.filter(user_name=caller["user"]).count()
    response = httpx2.post(caller["web"] + path, json=body, timeout=60,
                           headers={"Authorization": f"Bearer {caller['token']}"})

    assert response.status_code == 400
    answer = response.json()
    if path == OPENAI:
        assert (answer["error"]["message"], answer["error"]["param"]) == (OVER, field)
    else:
        assert (answer["message"], answer["field"]) == (OVER, field)
    assert CompletionUsage.objects.filter(user_name=caller["user"]).count() == calls  # no server was asked


def test_sql_complete_has_the_same_limit(caller):
    statement = ("SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', [{'role': 'user', 'content': 'Hello'}], "
                 f"{{'max_tokens': {LIMIT + 1}}})")
    calls = CompletionUsage.objects.filter(user_name=caller["user"]).count()
    response = httpx2.post(caller["web"] + SQL_API, json={"statement": statement}, timeout=60,
                           headers={"Authorization": f"Bearer {caller['token']}"})

    assert response.status_code == 422
    assert (response.json()["message"], response.json()["code"]) == (OVER, "100357")
    assert CompletionUsage.objects.filter(user_name=caller["user"]).count() == calls


@pytest.mark.parametrize("path", [OPENAI, CORTEX])
def test_max_tokens_at_the_limit_is_taken_by_the_embedded_server(caller, path):
    """The server `manage.py serve` starts shares the limit: it streams an answer for max_tokens = LIMIT
    instead of refusing it (the stream is closed after its first piece: only the start matters)."""
    body = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": LIMIT, "stream": True}
    with httpx2.stream("POST", caller["web"] + path, json=body, timeout=60,
                       headers={"Authorization": f"Bearer {caller['token']}"}) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: {"))
    assert "error" not in json.loads(first[6:]) and "code" not in json.loads(first[6:]), first
    assert caller["url"].removeprefix("http://") not in first
