"""Fixtures: a tiny random Llama base, LoRA adapters made on it, and the real server as a subprocess."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inference_server.tests._support import TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_NAME = "tiny-llama"
NEW_TOKENS_LIMIT = 64

# Adapter ids are the fine-tuned models' qualified names, matched exactly.
DIR_ADAPTER = "DEMO.PUBLIC.SUPPORT_TRIAGE"  # found in --adapters-dir at start
STATIC_ADAPTER = "DEMO.PUBLIC.STATIC_ONE"  # given as --adapter ID=PATH
LATE_ADAPTER = "DEMO.PUBLIC.TRAINED_LATER"  # moved into --adapters-dir while the server runs
FOREIGN_ADAPTER = "DEMO.PUBLIC.OTHER_BASE"  # in --adapters-dir, but trained for another base model

# The dir adapter's own template (no default system prompt, unlike the base one): chat requests for it
# must be formatted with this one.
ADAPTER_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
                    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                    "{% endif %}")


def tokenizer_dir() -> Path:
    return Path(os.environ.get("INFERENCE_TEST_TOKENIZER_DIR", REPO_ROOT / "var/models/base/smollm2-135m"))


def make_adapter(base_dir: Path, out_dir: Path, model_id: str, base_model: str, seed: int,
                 chat_template: str | None = None) -> Path:
    """A LoRA adapter dir as the trainer writes it, with random non-zero B matrices so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    get_peft_model(model, config).save_pretrained(str(out_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "studio_adapter.json").write_text(json.dumps({"model": model_id, "base_model": base_model}))
    return out_dir


@dataclass
class Models:
    root: Path
    base: Path
    adapters_dir: Path
    static_adapter: Path
    staging: Path
    adapter_dirs: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    tok_dir = tokenizer_dir()
    if not (tok_dir / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer at {tok_dir} (set INFERENCE_TEST_TOKENIZER_DIR)")
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.tiny_llama import build_tiny_llama

    root = tmp_path_factory.mktemp("inference-server")
    base = build_tiny_llama(tok_dir, root / "tiny-llama")
    adapters_dir = root / "adapters"
    adapters_dir.mkdir()
    staging = root / "staging"
    staging.mkdir()
    m = Models(root, base, adapters_dir, root / "static-one", staging)
    m.adapter_dirs[DIR_ADAPTER] = make_adapter(base, adapters_dir / "support-triage", DIR_ADAPTER, BASE_NAME, 1,
                                               chat_template=ADAPTER_TEMPLATE)
    m.adapter_dirs[STATIC_ADAPTER] = make_adapter(base, m.static_adapter, STATIC_ADAPTER, BASE_NAME, 2)
    m.adapter_dirs[FOREIGN_ADAPTER] = make_adapter(base, adapters_dir / "other-base", FOREIGN_ADAPTER,
                                                   "some-other-model", 3)
    (adapters_dir / "not-an-adapter").mkdir()  # ignored: no studio_adapter.json
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 90.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} not healthy after {timeout}s:\n{log.read_text() if log else ''}")


@contextmanager
def server_process(args: list[str], log: Path, token: str = TOKEN) -> Iterator[str]:
    """`python -m inference_server ARGS --port N`, as `manage.py serve` runs it (asking callers for `token`),
    until the block ends; yields its URL once /health answers. Its output goes to `log`."""
    port = free_port()
    cmd = [sys.executable, "-m", "inference_server", *args, "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
               STUDIO_INFERENCE_TOKEN=token)
    env.pop("STUDIO_INFERENCE_TOKEN_FILE", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log=log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server_url(models: Models):
    with server_process(["--base-model-dir", str(models.base), "--base-model-name", BASE_NAME,
                         "--adapters-dir", str(models.adapters_dir),
                         "--adapter", f"{STATIC_ADAPTER}={models.static_adapter}",
                         "--max-new-tokens-limit", str(NEW_TOKENS_LIMIT), "--log-level", "warning"],
                        models.root / "server.log") as url:
        yield url


@pytest.fixture()
def client(server_url):
    from huggingface_hub import InferenceClient

    return InferenceClient(base_url=server_url, api_key=TOKEN, timeout=60)
