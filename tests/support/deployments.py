"""Real deployments on one machine, for the tests between accounts (sharing, replication).

Each deployment is what an operator installs: its own data directory, its own metadata database (the
SQLite file project/settings.py puts there), its own Redis, worker, inference server and web app, each a
process on its own port, started with `manage.py` the way users start them. The test process is only a
client of them, like another machine: it drives them through their SQL API and `manage.py`, and none of
its own Django state (tests.settings, the test database) reaches them. Between two deployments there is
the network, which a test may replace with tests/support/network.py's proxy; nothing else is stood in for.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from supervision import processes

ADMIN_PASSWORD = "admin-deployment-password"
BASE_MODEL = "tiny-llama"
# conftest.TINY_LLAMA_LEARNING_RATE: the two-layer test model learns one reply in twenty steps at it.
TINY_LLAMA_IMPORT = ("--learning-rate", "1e-2", "--context-window", "2048", "--max-prompt-tokens", "1536",
                     "--max-completion-tokens", "512", "--training-data-limit-mb", "10",
                     "--description", "tiny Llama with SmolLM2's tokenizer (two-deployment tests)")
# What the test process's settings (tests/settings.py, pytest-django) put in the environment: a deployment's
# processes must not inherit them, or they would open the test's data directory and database.
INHERITED_NOT = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")
STARTUP_TIMEOUT_S = 120
POLL_INTERVAL_S = 0.3
STATEMENT_TIMEOUT_S = 600


class SqlError(Exception):
    """A statement the SQL API refused or that failed: Snowflake's message, code and SQLSTATE."""

    def __init__(self, message: str, code: str = "", sqlstate: str = "") -> None:
        super().__init__(message)
        self.message, self.code, self.sqlstate = message, code, sqlstate

    def __str__(self) -> str:
        return self.message


class Deployment:
    def __init__(self, root: Path, account: str, organization: str = "STUDIO_ORG") -> None:
        self.account, self.organization = account.upper(), organization.upper()
        self.data_dir = Path(root) / account.lower()
        ports: set[int] = set()
        while len(ports) < 3:  # free_port() lets its port go, so it may name the same one twice
            ports.add(processes.free_port())
        self.web_port, self.redis_port, self.inference_port = sorted(ports)
        self.processes: dict[str, subprocess.Popen] = {}
        self.keys: dict[str, str] = {}  # locator of each linked deployment -> the key both registered
        self._tokens: dict[str, str] = {}
        self._logs: dict[str, Any] = {}

    @property
    def locator(self) -> str:
        return f"{self.organization}.{self.account}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.inference_port}"

    def __repr__(self) -> str:
        return f"<Deployment {self.locator} at {self.url}>"

    # ---- environment and manage.py
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOT and not k.startswith("STUDIO_")}
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "STUDIO_DATA_DIR": str(self.data_dir),
            "STUDIO_REDIS_PORT": str(self.redis_port),
            "STUDIO_INFERENCE_PORT": str(self.inference_port),
            "STUDIO_PORT": str(self.web_port),
            "STUDIO_ACCOUNT_NAME": self.account,
            "STUDIO_ORGANIZATION": self.organization,
            "STUDIO_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "STUDIO_DEFAULT_BASE_MODEL": BASE_MODEL,
        })
        return env

    def _manage_argv(self, *args: str) -> list[str]:
        return [sys.executable, str(processes.BASE_DIR / "manage.py"), *args]

    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(self._manage_argv(*args), cwd=processes.BASE_DIR, env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.locator}: manage.py {' '.join(args)} exited with {done.returncode}\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    # ---- processes
    def log(self, name: str) -> str:
        """The last 4,000 characters of a process's log (<data_dir>/logs/<name>.log)."""
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = self._logs[name] = open(logs / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=processes.BASE_DIR, env=self.env(), stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def _wait(self, name: str, check, timeout: float = STARTUP_TIMEOUT_S) -> None:
        try:
            processes.wait_until(check, timeout, f"{name} of {self.locator}", self.processes.get(name))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- {self.data_dir / 'logs' / (name + '.log')}:\n{self.log(name)}") from None

    def start(self) -> None:
        """Redis, one worker for COMPUTE_WH, the inference server for tiny-llama and the web app; back once
        the web app and the inference server answer."""
        self.start_redis()
        run_id = uuid.uuid4().hex[:6]  # a fresh RQ name: one killed before stays "live" in Redis a while
        self._spawn("worker", self._manage_argv("worker", "--warehouse", "COMPUTE_WH",
                                                "--name", f"COMPUTE_WH-1.{run_id}"))
        self._spawn("inference", self._manage_argv("serve", "--base-model", BASE_MODEL,
                                                   "--port", str(self.inference_port)))
        self.start_web()
        self._wait("inference", lambda: processes.http_ok(f"{self.inference_url}/health"))

    def start_redis(self) -> None:
        password = (self.data_dir / "redis-password.txt").read_text().strip()
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = self._logs["redis"] = open(logs / "redis.log", "ab")
        try:
            self.processes["redis"] = processes.start_redis(self.redis_port, self.data_dir / "redis", password=password,
                                                            stdout=out, stderr=subprocess.STDOUT)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} ({self.locator})\n{self.log('redis')}") from None

    def start_web(self) -> None:
        """The web app on this deployment's port (again, after stop_web())."""
        if "web" in self.processes and self.processes["web"].poll() is None:
            return
        self._spawn("web", processes.web_command("127.0.0.1", self.web_port, workers=1))
        self._wait("web", self._web_answers)

    def _web_answers(self) -> bool:
        # Any HTTP answer from Django (an unsigned federation request is a 401) means the app is loaded.
        try:
            urllib.request.urlopen(self.url + "federation/v1/account", timeout=2).close()
        except urllib.error.HTTPError:
            pass
        return True

    def stop_web(self) -> None:
        self._stop("web")

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            processes.stop(process)
        out = self._logs.pop(name, None)
        if out is not None:
            out.close()

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self._stop(name)

    # ---- the SQL API
    def token(self, user: str = "admin") -> str:
        if user not in self._tokens:
            created = self.manage("apitoken", "create", user, "harness")
            self._tokens[user] = created.stdout.strip().splitlines()[-1]
        return self._tokens[user]

    def _call(self, method: str, path: str, user: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path.lstrip("/"), method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token(user)}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, {"message": f"HTTP {exc.code}: {raw[:500]!r}", "code": str(exc.code)}

    def sql(self, text: str, *, role: str | None = None, user: str = "admin",
            timeout: float = STATEMENT_TIMEOUT_S) -> list[dict[str, Any]]:
        """One statement through the SQL API as `user` (in `role`): its rows as dicts by column name, every
        value as the API sends it (a string, or None). A 202 is polled until the statement finishes."""
        body: dict[str, Any] = {"statement": text, "timeout": 45}
        if role:
            body["role"] = role
        status, answer = self._call("POST", "api/v2/statements", user, body)
        deadline = time.monotonic() + timeout
        while status == 202:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.locator}: still running after {timeout:.0f} s: {text[:200]}")
            time.sleep(POLL_INTERVAL_S)
            status, answer = self._call("GET", answer["statementStatusUrl"], user)
        if status != 200:
            raise SqlError(answer.get("message", f"HTTP {status}"), answer.get("code", ""), answer.get("sqlState", ""))
        names = [column["name"] for column in answer["resultSetMetaData"]["rowType"]]
        return [dict(zip(names, row)) for row in answer["data"]]

    def value(self, text: str, **kw: Any) -> Any:
        """The one value a statement returns (as `SELECT SNOWFLAKE.CORTEX.…` does)."""
        rows = self.sql(text, **kw)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return next(iter(rows[0].values()))

    # ---- fine-tuning jobs
    def describe_job(self, job_id: str, **kw: Any) -> dict[str, Any]:
        return json.loads(self.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job_id}')", **kw))

    def wait_for_job(self, job_id: str, timeout: float = 300, *, success: bool = True) -> dict[str, Any]:
        """DESCRIBE of the job once it has ended (SUCCESS, ERROR or CANCELLED; with `success`, SUCCESS it
        must be); past `timeout`, the failure shows the worker's log."""
        deadline = time.monotonic() + timeout
        while (described := self.describe_job(job_id))["status"] not in ("SUCCESS", "ERROR", "CANCELLED"):
            assert time.monotonic() < deadline, f"{described}\n{self.log('worker')}"
            time.sleep(0.3)
        assert not success or described["status"] == "SUCCESS", f"{described}\n{self.log('worker')}"
        return described

    # ---- the organization
    def register(self, other: Deployment, *, url: str | None = None, key: str | None = None) -> None:
        """Register (or register again, at another URL) `other` here, as ORGADMIN does."""
        key = key or self.keys[other.locator]
        self.sql(f"CREATE OR REPLACE ACCOUNT {other.locator} URL = '{url or other.url}' KEY = '{key}'", role="ORGADMIN")
        self.keys[other.locator] = key


def start_deployment(root: Path, account: str, tiny_llama_dir: Path, organization: str = "STUDIO_ORG") -> Deployment:
    """A new deployment `organization.account` under root/<account>, with tiny-llama as its base model."""
    deployment = Deployment(root, account, organization)
    deployment.manage("migrate", "-v0")
    deployment.manage("basemodels", "import", BASE_MODEL, "--from", str(tiny_llama_dir), *TINY_LLAMA_IMPORT)
    deployment.manage("bootstrap", "--no-demo")
    try:
        deployment.start()
    except BaseException:
        deployment.stop()
        raise
    return deployment


def link(a: Deployment, b: Deployment, b_url_on_a: str | None = None, a_url_on_b: str | None = None) -> str:
    """One new key, registered on each deployment for the other (trust is mutual); returns the key."""
    key = secrets.token_urlsafe(32)
    a.register(b, url=b_url_on_a, key=key)
    b.register(a, url=a_url_on_b, key=key)
    return key
