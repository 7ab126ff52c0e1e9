"""The server lets in only callers with the studio's token: any other local process gets TGI's 401 JSON
and changes nothing (no adapter unloaded, no token generated); /health stays open and says nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from inference_server.tests._support import TOKEN, get_json, post_json
from inference_server.tests.conftest import BASE_NAME, DIR_ADAPTER, REPO_ROOT, STATIC_ADAPTER
from inference_server.tests.test_metrics import scrape, value

PROMPT = "The parcel never arrived. Category:"
MISSING = {"error": "Authorization: Bearer <token> is required", "error_type": "unauthorized"}
INVALID = {"error": "The bearer token is not valid", "error_type": "unauthorized"}

ROUTES = [
    ("GET", "/info", None),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
    ("POST", "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2, "adapter_id": DIR_ADAPTER}}),
    ("POST", "/generate_stream", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}),
    ("POST", "/", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}),
    # The review's request: a fine-tuned model called straight on the server, past USAGE.
    ("POST", "/v1/chat/completions", {"model": DIR_ADAPTER, "messages": [{"role": "user", "content": PROMPT}]}),
    ("POST", "/v1/completions", {"model": STATIC_ADAPTER, "prompt": PROMPT, "max_tokens": 2}),
    ("POST", "/tokenize", {"inputs": PROMPT}),
    ("POST", "/adapters/load", {"adapter_id": DIR_ADAPTER}),
    ("POST", "/adapters/unload", {"adapter_id": DIR_ADAPTER}),
    ("POST", "/no/such/route", {}),
]
WRONG = [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}", "Bearer ", TOKEN, f"Basic {TOKEN}"]


def call(server_url: str, method: str, path: str, body: dict | None, headers: dict[str, str]):
    """(status, parsed body, headers) for any status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_but_health_refuses_a_request_without_the_token(server_url, method, path, body):
    status, answer, headers = call(server_url, method, path, body, {})
    assert (status, answer) == (401, MISSING)
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", WRONG, ids=["longer", "shorter", "other case", "empty", "no scheme", "basic"])
def test_a_wrong_token_is_refused(server_url, header):
    for method, path, body in ROUTES:
        assert call(server_url, method, path, body, {"Authorization": header})[:2] == (401, INVALID), path


def test_with_the_token_the_same_requests_are_answered(server_url):
    status, answer = post_json(server_url + "/generate", ROUTES[3][2])
    assert status == 200 and answer["generated_text"]
    status, answer = post_json(server_url + "/v1/chat/completions", {**ROUTES[6][2], "max_tokens": 2})
    assert status == 200 and answer["model"] == DIR_ADAPTER and answer["usage"]["completion_tokens"] == 2
    # The scheme is case-insensitive (RFC 9110); the token is not.
    assert post_json(server_url + "/tokenize", {"inputs": PROMPT}, headers={"Authorization": f"bearer {TOKEN}"})[0] == 200


def test_a_refused_unload_leaves_the_adapter_loaded(server_url):
    assert post_json(server_url + "/adapters/load", {"adapter_id": DIR_ADAPTER})[0] == 200
    assert post_json(server_url + "/adapters/unload", {"adapter_id": DIR_ADAPTER}, headers={}) == (401, MISSING)
    assert post_json(server_url + "/adapters/unload", {"adapter_id": DIR_ADAPTER},
                     headers={"Authorization": "Bearer guess"}) == (401, INVALID)
    assert DIR_ADAPTER in get_json(server_url + "/info")[1]["adapters"]
    listed = {m["id"]: m.get("status") for m in get_json(server_url + "/v1/models")[1]["data"]}
    assert listed[DIR_ADAPTER] == "ready"


def test_a_refused_generation_generates_nothing(server_url):
    before = scrape(server_url)
    for path in ("/generate", "/generate_stream", "/"):
        assert post_json(server_url + path, {"inputs": PROMPT, "parameters": {"max_new_tokens": 5}}, headers={})[0] == 401
    assert post_json(server_url + "/v1/completions", {"prompt": PROMPT, "max_tokens": 5}, headers={})[0] == 401
    after = scrape(server_url)
    assert value(after, "inference_generated_tokens_total") == value(before, "inference_generated_tokens_total")
    for route in ("/generate", "/generate_stream", "/", "/v1/completions"):  # never reached the routes at all
        assert value(after, "tgi_request_count_total", route=route, status="401") == 0


def test_health_stays_open_and_reveals_nothing(server_url):
    with urllib.request.urlopen(server_url + "/health", timeout=10) as response:
        assert response.status == 200 and response.read() == b""


def test_info_names_no_path_on_this_machine(server_url, models):
    status, info = get_json(server_url + "/info")
    assert status == 200 and info["model_id"] == BASE_NAME
    assert "adapters_dir" not in info
    text = json.dumps(info)
    assert str(models.root) not in text and str(models.adapters_dir) not in text and "/" not in text
    assert str(models.root) not in json.dumps(get_json(server_url + "/v1/models")[1])


def test_the_server_does_not_start_without_a_token(models):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_INFERENCE_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "inference_server", "--base-model-dir", str(models.base),
                           "--base-model-name", BASE_NAME, "--port", "9"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "inference_server: no token: set STUDIO_INFERENCE_TOKEN or STUDIO_INFERENCE_TOKEN_FILE" in done.stderr
