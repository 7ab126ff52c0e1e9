"""The studio's deployment routes on the embedded server: POST /adapters/load and /adapters/unload, and the
adapters' status in /v1/models."""
from __future__ import annotations

import pytest

from inference_server.tests._support import get_json, move_in, post_json
from inference_server.tests.conftest import BASE_NAME, DIR_ADAPTER, FOREIGN_ADAPTER, make_adapter

PROMPT = "Hello there"


def listed(server_url: str) -> dict[str, str | None]:
    """adapter id -> its status in /v1/models."""
    status, body = get_json(server_url + "/v1/models")
    assert status == 200
    return {m["id"]: m.get("status") for m in body["data"] if m.get("parent") == BASE_NAME}


def test_loading_an_adapter_the_server_holds_answers_ready(server_url):
    status, body = post_json(server_url + "/adapters/load", {"adapter_id": DIR_ADAPTER})
    assert (status, body) == (200, {"id": DIR_ADAPTER, "status": "ready"})
    assert listed(server_url)[DIR_ADAPTER] == "ready"


def test_loading_an_unknown_adapter_is_a_404_naming_it(server_url):
    status, body = post_json(server_url + "/adapters/load", {"adapter_id": "DEMO.PUBLIC.NOWHERE"})
    assert status == 404 and body["error_type"] == "adapter_not_found"
    assert body["error"] == f"Adapter 'DEMO.PUBLIC.NOWHERE' not found on this server (base model '{BASE_NAME}')"

    status, body = post_json(server_url + "/adapters/load", {"adapter_id": FOREIGN_ADAPTER})
    assert status == 404 and "trained for base model 'some-other-model'" in body["error"]


@pytest.mark.parametrize("body", [{}, {"adapter_id": ""}, {"adapter_id": 7}, {"adapter_id": BASE_NAME}])
def test_a_load_without_an_adapter_id_is_a_validation_error(server_url, body):
    status, answer = post_json(server_url + "/adapters/load", body)
    assert status == 422 and answer["error_type"] == "validation" and "adapter_id" in answer["error"]
    status, answer = post_json(server_url + "/adapters/unload", body)
    assert status == 422 and answer["error_type"] == "validation"


def test_an_adapter_that_does_not_load_is_a_500_with_the_reason(server_url, models):
    broken_id = "DEMO.PUBLIC.BROKEN_ROUTES"
    staged = make_adapter(models.base, models.staging / "broken-routes", broken_id, BASE_NAME, seed=11)
    (staged / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    move_in(staged, models.adapters_dir / "broken-routes")
    try:
        status, body = post_json(server_url + "/adapters/load", {"adapter_id": broken_id})
        assert status == 500 and body["error_type"] == "adapter_load_error"
        assert body["error"].startswith(f"Adapter '{broken_id}' at ") and "could not be loaded" in body["error"]
        assert listed(server_url)[broken_id] == "available"  # in the directory, never loaded
    finally:
        move_in(models.adapters_dir / "broken-routes", models.staging / "broken-routes-out")


def test_unloading_frees_the_adapter_and_a_request_after_its_directory_is_gone_is_refused(server_url, models):
    adapter_id = "DEMO.PUBLIC.UNLOAD_ME"
    staged = make_adapter(models.base, models.staging / "unload-me", adapter_id, BASE_NAME, seed=12)
    move_in(staged, models.adapters_dir / "unload-me")
    assert listed(server_url)[adapter_id] == "available"
    assert post_json(server_url + "/adapters/load", {"adapter_id": adapter_id}) == (
        200, {"id": adapter_id, "status": "ready"})
    assert listed(server_url)[adapter_id] == "ready"
    assert adapter_id in get_json(server_url + "/info")[1]["adapters"]

    assert post_json(server_url + "/adapters/unload", {"adapter_id": adapter_id}) == (
        200, {"id": adapter_id, "status": "unloaded", "was_loaded": True})
    assert adapter_id not in get_json(server_url + "/info")[1]["adapters"]
    assert listed(server_url)[adapter_id] == "available"

    move_in(models.adapters_dir / "unload-me", models.staging / "unload-me-dropped")  # DROP MODEL deletes it
    assert adapter_id not in listed(server_url)
    status, body = post_json(server_url + "/v1/chat/completions", {
        "model": adapter_id, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 3})
    assert status == 404 and body["error_type"] == "adapter_not_found" and adapter_id in body["error"]
    status, body = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {
        "max_new_tokens": 3, "adapter_id": adapter_id}})
    assert status == 422 and adapter_id in body["error"]
    # Unloading is idempotent: undeploying twice (a retried DROP MODEL) is not an error.
    assert post_json(server_url + "/adapters/unload", {"adapter_id": adapter_id}) == (
        200, {"id": adapter_id, "status": "unloaded", "was_loaded": False})

