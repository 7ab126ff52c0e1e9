"""The TGI backend (inference/tgi/): which adapters TGI can serve, LORA_ADAPTERS, redeploys, the compose file.

TGI itself needs a GPU and Docker, which the test machines do not have. The redeploy tests therefore
restart our own TGI-compatible server (`python -m inference_server`) in its place: the restart command
is a small script that reads the generated env file the way the tgi service's entrypoint does, stops the
previous server and starts a new one with one `--adapter ID=PATH` per LORA_ADAPTERS entry (container
paths mapped back to the model store, as the compose volume does). So drain -> restart -> /health ->
confirmation run against a real HTTP server. The adapters are real PEFT adapters on the tiny Llama.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from inference import client, tgi
from inference.credentials import auth_headers
from inference.tgi.restarts import _post_json
from inference.models import InferenceServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = "tiny-llama"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
OWN_TEMPLATE = ("{% for message in messages %}{{ '### ' + message['role'] + ': ' + message['content'] + '\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '### assistant: ' }}{% endif %}")


def make_adapter(base_dir: Path, out_dir: Path, model_id: str, *, r: int = 16, target_modules=None,
                 seed: int = 0, safe: bool = True, init_lora_weights: bool = False, chat_template: str | None = None,
                 base_model: str = BASE, **lora) -> Path:
    """A PEFT LoRA adapter directory as the trainer writes it (random non-zero B unless init_lora_weights)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=r, lora_alpha=2 * r, init_lora_weights=init_lora_weights, task_type="CAUSAL_LM",
                        target_modules=target_modules or PROJECTIONS, **lora)
    get_peft_model(model, config).save_pretrained(str(out_dir), safe_serialization=safe)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "studio_adapter.json").write_text(json.dumps({"model": model_id, "base_model": base_model}))
    return out_dir


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir) -> dict[str, Path]:
    from django.conf import settings

    root = settings.MODEL_STORE / "adapters" / "tgi-tests"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    specs = {
        "good_a": dict(model_id="TGIDB.PUBLIC.GOOD_A", seed=1),
        "good_b": dict(model_id="TGIDB.PUBLIC.GOOD_B", seed=2, r=8),
        "rank_48": dict(model_id="TGIDB.PUBLIC.RANK_48", r=48),
        "rank_256": dict(model_id="TGIDB.PUBLIC.RANK_256", r=256),
        "lm_head": dict(model_id="TGIDB.PUBLIC.LM_HEAD", target_modules=["q_proj", "v_proj", "lm_head"]),
        "bin": dict(model_id="TGIDB.PUBLIC.BIN_WEIGHTS", safe=False),
        "dora": dict(model_id="TGIDB.PUBLIC.DORA", use_dora=True),
        "modules_to_save": dict(model_id="TGIDB.PUBLIC.SAVES_HEAD", modules_to_save=["lm_head"]),
        "one_layer": dict(model_id="TGIDB.PUBLIC.ONE_LAYER", layers_to_transform=[0]),
        "own_template": dict(model_id="TGIDB.PUBLIC.OWN_TEMPLATE", chat_template=OWN_TEMPLATE),
        "untrained": dict(model_id="TGIDB.PUBLIC.UNTRAINED", init_lora_weights=True),
    }
    return {key: make_adapter(tiny_llama_dir, root / key, **spec) for key, spec in specs.items()}


# -- check_servable ----------------------------------------------------------------------------------------------

def test_it_accepts_a_lora_on_the_seven_projections(adapters):
    tgi.check_servable(adapters["good_a"], server_base_model=BASE)
    tgi.check_servable(adapters["good_b"], server_base_model=BASE)  # rank 8


def refusal(path: Path, **kwargs) -> str:
    with pytest.raises(tgi.NotServable) as excinfo:
        tgi.check_servable(path, **kwargs)
    return excinfo.value.message


def test_it_refuses_a_rank_tgi_pads_to_one_without_a_kernel(adapters):
    message = refusal(adapters["rank_48"])
    assert message.startswith("Adapter TGIDB.PUBLIC.RANK_48 has LoRA rank 48, which TGI pads to 48")
    assert "Retrain it with a LoRA rank of 8, 16, 32, 64 or 128" in message


def test_it_refuses_a_rank_above_128(adapters):
    message = refusal(adapters["rank_256"])
    assert message.startswith("Adapter TGIDB.PUBLIC.RANK_256 has LoRA rank 256, above 128")
    assert "Retrain it with a LoRA rank of 8, 16, 32, 64 or 128" in message


def test_it_refuses_a_module_tgi_does_not_adapt(adapters):
    message = refusal(adapters["lm_head"])
    assert message.startswith("Adapter TGIDB.PUBLIC.LM_HEAD adapts 'lm_head', which TGI does not apply LoRA to "
                              "on 'llama' models")
    assert "Retrain it with target_modules among those" in message


def test_it_refuses_bin_weights(adapters):
    message = refusal(adapters["bin"])
    assert message.startswith("Adapter TGIDB.PUBLIC.BIN_WEIGHTS: its weights are adapter_model.bin, and TGI loads "
                              "only *.safetensors")
    assert "safe_serialization=True" in message


def test_it_refuses_dora(adapters):
    message = refusal(adapters["dora"])
    assert message.startswith("Adapter TGIDB.PUBLIC.DORA uses DoRA")
    assert "Retrain it without DoRA" in message


def test_it_refuses_modules_to_save(adapters):
    message = refusal(adapters["modules_to_save"])
    assert message.startswith("Adapter TGIDB.PUBLIC.SAVES_HEAD saves full copies of lm_head (modules_to_save)")


def test_it_refuses_an_adapter_on_only_some_layers(adapters):
    message = refusal(adapters["one_layer"])
    assert "adapts 'down_proj' in only some layers (lora_A missing in layers 1)" in message
    assert "TGI then drops 'down_proj' in every layer" in message


def test_it_refuses_an_adapter_trained_with_its_own_chat_template(adapters):
    message = refusal(adapters["own_template"])
    assert message.startswith("Adapter TGIDB.PUBLIC.OWN_TEMPLATE was trained with its own chat template, but TGI "
                              "renders chat requests with the base model's")


def test_it_refuses_an_adapter_for_another_base_model(adapters):
    message = refusal(adapters["good_a"], server_base_model="llama3.1-8b")
    assert message == ("Adapter TGIDB.PUBLIC.GOOD_A was trained on base model 'tiny-llama', but this TGI server runs "
                       "'llama3.1-8b'. Deploy it to a server for 'tiny-llama'.")


def test_it_refuses_an_architecture_without_lora_layers_in_tgi(adapters, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mixtral", "num_hidden_layers": 2}))
    message = refusal(adapters["good_a"], base_model_dir=tmp_path)
    assert message == ("Adapter TGIDB.PUBLIC.GOOD_A: TGI has no LoRA support for 'mixtral' models, the architecture "
                       "of its base model. Serve it with the embedded backend.")


def test_it_refuses_a_directory_without_an_adapter(tmp_path):
    message = refusal(tmp_path, name="TGIDB.PUBLIC.GONE")
    assert message.startswith(f"Adapter TGIDB.PUBLIC.GONE: {tmp_path / 'adapter_config.json'} is missing")


# -- adapter ids, LORA_ADAPTERS and the env file -----------------------------------------------------------------

@pytest.fixture
def schema(db):
    from catalog.models import Database, Schema

    return Schema.objects.create(database=Database.objects.create(name="TGIDB"), name="PUBLIC")


def model_row(schema, name: str, path: Path, base_model: str = BASE):
    from models_registry.models import FineTunedModel

    return FineTunedModel.objects.create(schema=schema, name=name, base_model=base_model, owner_role="SYSADMIN",
                                         adapter_path=str(path))


def test_adapter_ids_are_qualified_names_with_tgi_syntax_percent_encoded():
    assert tgi.adapter_id("DB.SCHEMA.NAME") == "DB.SCHEMA.NAME"
    odd = 'DB.PUBLIC."a,b=c@d 100% it\'s"'
    assert tgi.adapter_id(odd) == 'DB.PUBLIC."a%2Cb%3Dc%40d 100%25 it%27s"'
    for name in (odd, 'DB.S."\ttab"', 'DB.S."new\nline"', "DB.S.PLAIN_1"):
        assert tgi.qualified_name_for(tgi.adapter_id(name)) == name
        assert not set(tgi.adapter_id(name)) & set(",=@'\n\t")


def test_requests_to_a_tgi_server_name_the_adapter_by_its_lora_adapters_id():
    """COMPLETE's chat request selects the adapter by `model`: on TGI that is the id LORA_ADAPTERS gave it."""
    odd = client.ServedModel("smollm2-135m", 'DB.PUBLIC."a,b"', 'DB.PUBLIC."a,b"')
    tgi_server = InferenceServer(name="t", url="http://tgi", base_model="smollm2-135m", backend="tgi")
    embedded = InferenceServer(name="e", url="http://e", base_model="smollm2-135m", backend="embedded")
    assert client.requested_model(tgi_server, odd) == tgi.adapter_id('DB.PUBLIC."a,b"') == 'DB.PUBLIC."a%2Cb"'
    assert client.requested_model(embedded, odd) == 'DB.PUBLIC."a,b"'
    base = client.ServedModel("smollm2-135m", None, "smollm2-135m")
    assert client.requested_model(tgi_server, base) == "smollm2-135m"


def test_lora_adapters_setting_maps_adapter_dirs_into_the_container(schema, settings, tmp_path):
    settings.MODEL_STORE = tmp_path / "store"
    settings.TGI_MODEL_STORE = "/studio/models"
    b = model_row(schema, "B_MODEL", tmp_path / "store/adapters/ft_2")
    a = model_row(schema, "odd,name", tmp_path / "store/adapters/ft_1")
    assert tgi.lora_adapters_setting([b, a]) == ('TGIDB.PUBLIC."odd%2Cname"=/studio/models/adapters/ft_1,'
                                                 "TGIDB.PUBLIC.B_MODEL=/studio/models/adapters/ft_2")
    assert tgi.lora_adapters_setting([]) == ""


def test_lora_adapters_setting_refuses_an_adapter_outside_the_model_store(schema, settings, tmp_path):
    settings.MODEL_STORE = tmp_path / "store"
    with pytest.raises(tgi.NotServable) as excinfo:
        tgi.lora_adapters_setting([model_row(schema, "ELSEWHERE", tmp_path / "elsewhere")])
    assert excinfo.value.message.startswith(f"{tmp_path / 'elsewhere'} is outside the model store")


def test_the_env_file_is_replaced_whole_and_leaves_out_an_empty_list(tmp_path):
    path = tmp_path / "tgi.env"
    tgi.write_env_file("A.B.C=/studio/models/adapters/x", path)
    assert path.read_text().endswith("\nLORA_ADAPTERS='A.B.C=/studio/models/adapters/x'\n")
    assert tgi.read_lora_adapters(path) == "A.B.C=/studio/models/adapters/x"
    tgi.write_env_file("", path)
    assert "LORA_ADAPTERS" not in path.read_text().replace("# launch", "")
    assert [p.name for p in tmp_path.iterdir()] == ["tgi.env"]  # no temporary file left behind


def test_prepare_base_model_writes_the_chat_template_file_tgi_reads(tiny_llama_dir, tmp_path):
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, tmp_path / name)
    assert tgi.prepare_base_model(tmp_path) is True
    written = json.loads((tmp_path / "chat_template.json").read_text())
    assert written == {"chat_template": (tiny_llama_dir / "chat_template.jinja").read_text()}
    assert tgi.prepare_base_model(tmp_path) is False


# -- docker/compose.yaml -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker/compose.yaml").read_text())


def test_compose_runs_tgi_beside_the_studio(compose):
    services = compose["services"]
    # vllm and vllm-register start only with --profile vllm (inference/tests/test_vllm.py)
    assert set(services) == {"postgres", "redis", "init", "web", "worker", "tgi", "vllm", "vllm-register"}
    tgi_service = services["tgi"]
    image, _, tag = tgi_service["image"].rpartition(":")
    assert image == "ghcr.io/huggingface/text-generation-inference" and tag.count(".") == 2
    assert tgi_service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("postgres", "redis", "web", "tgi"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("web", "worker", "tgi"):
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    assert services["init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_compose_mounts_the_model_store_and_the_env_file_where_the_settings_say(compose, settings):
    services = compose["services"]
    tgi_service = services["tgi"]
    assert "studio-data:/studio:ro" in tgi_service["volumes"]
    assert "./:/config:ro" in tgi_service["volumes"]
    assert "LORA_ADAPTERS" not in tgi_service["environment"]  # only the generated file sets it
    assert tgi_service["environment"]["MODEL_ID"].startswith(settings.TGI_MODEL_STORE + "/base/")
    for name in ("init", "web", "worker"):
        env = services[name]["environment"]
        assert env["STUDIO_TGI_MODEL_STORE"] == settings.TGI_MODEL_STORE == "/studio/models"
        assert env["STUDIO_DATA_DIR"] == "/data" and "studio-data:/data" in services[name]["volumes"]
        assert env["STUDIO_TGI_ENV_FILE"] == "/config/tgi.env" and "./:/config" in services[name]["volumes"]
        assert env["STUDIO_TGI_RESTART_COMMAND"].split()[-1] == tgi_service["container_name"]
    # The host's default env file is the one the tgi container sees at /config (docker/ itself).
    assert settings.TGI_ENV_FILE == REPO_ROOT / "docker/tgi.env"


def tgi_entrypoint(compose, env_file: Path, token_file: Path) -> list[str]:
    """The tgi service's entrypoint with its files moved to `env_file` and `token_file`, and printenv standing
    in for TGI's own entrypoint."""
    entrypoint = compose["services"]["tgi"]["entrypoint"]
    script = (entrypoint[2].replace("$$", "$").replace("/config/tgi.env", str(env_file))
              .replace("/studio/inference-token.txt", str(token_file)).replace("/tgi-entrypoint.sh", "printenv"))
    return ["/bin/sh", "-c", script, entrypoint[3]]


def test_the_tgi_entrypoint_loads_the_generated_list_verbatim(compose, tmp_path):
    """The entrypoint sources the env file with sh: odd quoted names must reach TGI unchanged."""
    names = ['DB.PUBLIC."$HOME and `x` and \\"q\\""', "DB.PUBLIC.PLAIN"]
    setting = ",".join(f"{tgi.adapter_id(n)}=/studio/models/adapters/ft_{i}" for i, n in enumerate(names))
    env_file = tgi.write_env_file(setting, tmp_path / "tgi.env")
    (tmp_path / "token").write_text("the-studios-token\n")
    out = subprocess.run([*tgi_entrypoint(compose, env_file, tmp_path / "token"), "LORA_ADAPTERS", "API_KEY"],
                         capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    assert out.stdout == setting + "\n" + "the-studios-token\n"
    assert [tgi.qualified_name_for(e.partition("=")[0]) for e in out.stdout.splitlines()[0].split(",")] == names


def test_compose_publishes_only_the_web_app_and_tgi_asks_for_the_studios_token(compose, tmp_path):
    services = compose["services"]
    assert [name for name, service in services.items() if "ports" in service] == ["web"]
    # The studio writes its token into the data volume (STUDIO_DATA_DIR), which TGI mounts at /studio.
    assert "studio-data:/studio:ro" in services["tgi"]["volumes"]
    for name in ("init", "web", "worker"):
        assert services[name]["environment"]["STUDIO_DATA_DIR"] == "/data" and "STUDIO_INFERENCE_TOKEN" not in (
            services[name]["environment"])
    assert "/studio/inference-token.txt" in services["tgi"]["entrypoint"][2]
    # Without the token TGI does not start, rather than serve everyone.
    for token_file in (tmp_path / "missing", tmp_path / "empty"):
        if token_file.name == "empty":
            token_file.write_text("")
        out = subprocess.run([*tgi_entrypoint(compose, tmp_path / "no-env-file", token_file), "API_KEY"],
                             capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
        assert out.returncode == 1 and out.stdout == ""


def test_compose_redis_asks_for_its_password_given_off_the_command_line(compose, tmp_path):
    """The redis service's command, run with the embedded redis-server in the image's entrypoint's place."""
    from supervision.processes import free_port, redis_command, redis_server_binary, stop, wait_until

    services = compose["services"]
    assert services["redis"]["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    for name in ("init", "web", "worker"):
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert "ports" not in services["redis"]
    port, password = free_port(), "c0mposePassw0rd"
    script = (services["redis"]["command"][2].replace("$$", "$").replace(
        "docker-entrypoint.sh redis-server -", f"{redis_server_binary()} - --port {port} --bind 127.0.0.1 "
                                               f"--dir {tmp_path}"))
    server = subprocess.Popen(["/bin/sh", "-c", script], env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": password},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis_command(port, "PING", password=password) == b"+PONG\r\n", 20, "redis-server", server)
        with pytest.raises(RuntimeError, match="refused PING: -NOAUTH Authentication required"):
            redis_command(port, "PING")
        assert password not in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
    finally:
        stop(server)


# -- draining and restarting ---------------------------------------------------------------------------------------

class MetricsServer:
    """A server answering /metrics like TGI, with a number of requests in flight that drops as it is polled."""

    def __init__(self, in_flight: list[int]):
        remaining = list(in_flight)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                value = remaining.pop(0) if len(remaining) > 1 else remaining[0]
                body = (f"# TYPE tgi_queue_size gauge\ntgi_queue_size 0\n# TYPE tgi_batch_current_size gauge\n"
                        f"tgi_batch_current_size {value}\n").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_drain_waits_until_nothing_is_in_flight():
    server = MetricsServer([2, 1, 1, 0])
    try:
        assert tgi.wait_for_drain(server.url, timeout=10, interval=0.05) is True
    finally:
        server.close()


def test_drain_gives_up_after_its_bound():
    server = MetricsServer([1])
    try:
        started = time.monotonic()
        assert tgi.wait_for_drain(server.url, timeout=0.5, interval=0.05) is False
        assert time.monotonic() - started < 3
    finally:
        server.close()


def test_in_flight_counts_queue_and_batch_from_tgi_metrics():
    text = "tgi_queue_size 3\ntgi_batch_current_size 2\ntgi_batch_current_max_tokens 100\ntgi_request_count 9\n"
    assert tgi.in_flight(text) == 5
    assert tgi.in_flight("tgi_request_count 1\n") == 0


def test_restart_container_asks_the_docker_engine_to_restart_tgi(tmp_path):
    """The restart command of the compose web and worker services, against a stand-in Docker Engine socket."""
    requests = []
    path = str(tmp_path / "docker.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(2)

    def serve():
        for status in (b"204 No Content", b"404 Not Found"):
            conn, _ = listener.accept()
            with conn:
                requests.append(conn.recv(65536).split(b"\r\n")[0].decode())
                body = b"" if status.startswith(b"204") else b'{"message":"No such container: studio-tgi"}'
                conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() +
                             b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert tgi.restart_container("studio-tgi", socket_path=path) == 0
        assert tgi.restart_container("studio-tgi", socket_path=path) == 1
    finally:
        thread.join(5)
        listener.close()
    assert requests == ["POST /containers/studio-tgi/restart?t=90 HTTP/1.1"] * 2


# -- redeploy against a real server --------------------------------------------------------------------------------

STANDIN = r'''
"""Stand-in for restarting the tgi service: read the env file as its entrypoint does, stop the previous
server, start python -m inference_server with LORA_ADAPTERS as --adapter flags, and return."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

conf = json.loads(sys.argv[1])
setting = ""
if not conf["ignore_env"] and Path(conf["env_file"]).exists():
    for line in Path(conf["env_file"]).read_text().splitlines():
        if line.startswith("LORA_ADAPTERS="):
            setting = line.partition("=")[2].strip("'")


def port_open():
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", conf["port"])) == 0


pid_file = Path(conf["pid_file"])
if pid_file.exists():
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while port_open() and time.monotonic() < deadline:
        time.sleep(0.1)
argv = [sys.executable, "-m", "inference_server", "--base-model-dir", conf["base_dir"], "--base-model-name",
        conf["base_name"], "--port", str(conf["port"]), "--log-level", "warning", "--max-new-tokens-limit", "64"]
for entry in filter(None, setting.split(",")):
    adapter_id, _, path = entry.partition("=")
    argv += ["--adapter", adapter_id + "=" + conf["host_store"] + path[len(conf["container_store"]):]]
with open(conf["log"], "ab") as log:  # the token TGI would take as its API_KEY
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "STUDIO_INFERENCE_TOKEN_FILE": conf["token_file"]})
pid_file.write_text(str(server.pid))
'''


@dataclass
class Standin:
    url: str
    conf: dict
    script: Path

    def command(self, **overrides) -> str:
        """The restart command: the stand-in script, with its configuration (``ignore_env=True``: start the
        server without the new list, as a restart that keeps TGI's old environment would)."""
        return shlex.join([sys.executable, str(self.script), json.dumps({**self.conf, **overrides})])


@pytest.fixture
def standin(settings, tiny_llama_dir, tmp_path):
    """Settings that make redeploy restart the embedded server in TGI's place; stops it afterwards."""
    from supervision.processes import free_port

    script = tmp_path / "restart_standin.py"
    script.write_text(STANDIN)
    port = free_port()
    conf = {"env_file": str(tmp_path / "tgi.env"), "pid_file": str(tmp_path / "server.pid"), "port": port,
            "base_dir": str(tiny_llama_dir), "base_name": BASE, "container_store": "/studio/models",
            "host_store": str(settings.MODEL_STORE), "log": str(tmp_path / "server.log"), "ignore_env": False,
            "token_file": str(tmp_path / "inference-token.txt")}
    Path(conf["token_file"]).write_text(settings.INFERENCE_TOKEN)
    settings.TGI_ENV_FILE = Path(conf["env_file"])
    settings.TGI_MODEL_STORE = conf["container_store"]
    settings.TGI_DRAIN_TIMEOUT = 5
    settings.TGI_HEALTH_TIMEOUT = 120

    standin = Standin(f"http://127.0.0.1:{port}", conf, script)
    settings.TGI_RESTART_COMMAND = standin.command()
    yield standin
    pid_file = Path(conf["pid_file"])
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.1)


@pytest.fixture
def tgi_server(db):
    from inference.models import InferenceServer

    def make(url: str):
        return InferenceServer.objects.create(name="tgi-tiny", url=url, base_model=BASE,
                                              backend=InferenceServer.Backend.TGI)
    return make


def generate(url: str, adapter: str | None) -> tuple[int, dict]:
    parameters = {"max_new_tokens": 4, "details": True}
    if adapter:
        parameters["adapter_id"] = adapter
    status, body = _post_json(url + "/generate", {"inputs": "Hello", "parameters": parameters})
    return status, body


def test_redeploy_serves_the_adapters_tgi_can_serve_and_says_why_not_for_the_others(
        adapters, schema, standin, tgi_server):
    server = tgi_server(standin.url)
    good_a = model_row(schema, "GOOD_A", adapters["good_a"])
    good_b = model_row(schema, "GOOD_B", adapters["good_b"])
    rank_48 = model_row(schema, "RANK_48", adapters["rank_48"])
    untrained = model_row(schema, "UNTRAINED", adapters["untrained"])

    result = tgi.redeploy(server, [good_a, rank_48, good_b, untrained])

    assert result["TGIDB.PUBLIC.GOOD_A"] is None
    assert result["TGIDB.PUBLIC.GOOD_B"] is None
    assert result["TGIDB.PUBLIC.RANK_48"].startswith("Adapter TGIDB.PUBLIC.RANK_48 has LoRA rank 48")
    assert result["TGIDB.PUBLIC.UNTRAINED"].startswith(
        f"TGI at {standin.url} answers adapter 'TGIDB.PUBLIC.UNTRAINED' exactly like the base model")
    assert tgi.read_lora_adapters(standin.conf["env_file"]) == (
        "TGIDB.PUBLIC.GOOD_A=/studio/models/adapters/tgi-tests/good_a,"
        "TGIDB.PUBLIC.GOOD_B=/studio/models/adapters/tgi-tests/good_b,"
        "TGIDB.PUBLIC.UNTRAINED=/studio/models/adapters/tgi-tests/untrained")
    with urllib.request.urlopen(urllib.request.Request(standin.url + "/info", headers=auth_headers())) as response:
        assert sorted(json.load(response)["adapters"]) == [
            "TGIDB.PUBLIC.GOOD_A", "TGIDB.PUBLIC.GOOD_B", "TGIDB.PUBLIC.UNTRAINED"]
    _, base = generate(standin.url, None)
    status, answer = generate(standin.url, "TGIDB.PUBLIC.GOOD_A")
    assert status == 200 and answer["details"]["tokens"] != base["details"]["tokens"]

    # Dropping GOOD_B: the next deploy restarts the server without it.
    result = tgi.redeploy(server, [good_a])

    assert result == {"TGIDB.PUBLIC.GOOD_A": None}
    status, answer = generate(standin.url, "TGIDB.PUBLIC.GOOD_B")
    assert status == 422 and "TGIDB.PUBLIC.GOOD_B" in answer["error"]


def test_redeploy_reports_an_adapter_the_restarted_server_does_not_serve(adapters, schema, standin, tgi_server, settings):
    """As when the restart leaves TGI with its old environment: the adapter is not confirmed."""
    settings.TGI_RESTART_COMMAND = standin.command(ignore_env=True)
    server = tgi_server(standin.url)
    result = tgi.redeploy(server, [model_row(schema, "GOOD_A", adapters["good_a"])])
    reason = result["TGIDB.PUBLIC.GOOD_A"]
    assert reason.startswith(f"TGI at {standin.url} does not serve adapter 'TGIDB.PUBLIC.GOOD_A' after the restart "
                             f"(HTTP 422: ")


def test_redeploy_reports_a_failing_restart_command_for_every_adapter(adapters, schema, settings, tmp_path, tgi_server):
    settings.TGI_ENV_FILE = tmp_path / "tgi.env"
    settings.TGI_RESTART_COMMAND = shlex.join(
        [sys.executable, "-c", "import sys; sys.stderr.write('no such service: tgi\\n'); sys.exit(3)"])
    server = tgi_server("http://127.0.0.1:9")
    models = [model_row(schema, "GOOD_A", adapters["good_a"]), model_row(schema, "GOOD_B", adapters["good_b"]),
              model_row(schema, "GONE", tmp_path / "gone")]

    result = tgi.redeploy(server, models)

    expected = (f"TGI was not restarted: the restart command `{settings.TGI_RESTART_COMMAND}` exited with status 3: "
                f"no such service: tgi")
    assert result["TGIDB.PUBLIC.GOOD_A"] == result["TGIDB.PUBLIC.GOOD_B"] == expected
    assert result["TGIDB.PUBLIC.GONE"].startswith(f"Adapter TGIDB.PUBLIC.GONE: {tmp_path / 'gone/adapter_config.json'} "
                                                  f"is missing")
    assert "GOOD_A" in tgi.read_lora_adapters(tmp_path / "tgi.env")  # written before the restart was tried


def test_redeploy_reports_a_missing_restart_command(adapters, schema, settings, tmp_path, tgi_server):
    settings.TGI_ENV_FILE = tmp_path / "tgi.env"
    settings.TGI_RESTART_COMMAND = "no-such-docker compose restart tgi"
    result = tgi.redeploy(tgi_server("http://127.0.0.1:9"), [model_row(schema, "GOOD_A", adapters["good_a"])])
    assert result["TGIDB.PUBLIC.GOOD_A"].startswith(
        "TGI was not restarted: the restart command `no-such-docker compose restart tgi` cannot run (")
    assert result["TGIDB.PUBLIC.GOOD_A"].endswith("Set STUDIO_TGI_RESTART_COMMAND.")


def test_redeploy_gives_up_when_health_never_answers(adapters, schema, settings, tmp_path, tgi_server):
    from supervision.processes import free_port

    settings.TGI_ENV_FILE = tmp_path / "tgi.env"
    settings.TGI_RESTART_COMMAND = shlex.join([sys.executable, "-c", "pass"])  # "restarts" nothing
    settings.TGI_HEALTH_TIMEOUT = 2
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = tgi.redeploy(tgi_server(url), [model_row(schema, "GOOD_A", adapters["good_a"])])

    assert time.monotonic() - started < 10
    assert result["TGIDB.PUBLIC.GOOD_A"].startswith(
        f"TGI at {url} did not answer /health with 200 within 2 s of its restart (last: ")
