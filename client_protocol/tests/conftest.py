"""Snowflake's own clients, run unchanged in their own environments (bin/install --test makes them under
.venv-clients/), against the studio's web app served over HTTP as the other end-to-end tests serve it."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
PASSWORD = "admin-test-password"  # what conftest's stack bootstraps the admin with


def client_python(generation: str) -> Path:
    python = ROOT / ".venv-clients" / generation / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run bin/install --test, which installs Snowflake's clients.")
    return python


@dataclass
class Studio:
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def run(self, generation: str, script: str, *args: str, user: str = "admin", password: str = PASSWORD,
            timeout: int = 300, **env: str) -> dict:
        """Run scripts/<script> with the client generation's Python; returns the JSON it prints last."""
        environment = {**os.environ, "STUDIO_HOST": self.host, "STUDIO_PORT": str(self.port), "STUDIO_USER": user,
                       "STUDIO_PASSWORD": password, **env}
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run([str(client_python(generation)), str(SCRIPTS / script), *args], capture_output=True,
                              text=True, timeout=timeout, env=environment, cwd=str(SCRIPTS))
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise AssertionError(f"{script} under {generation} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-6000:]}")
        return json.loads(lines[-1])


    @contextmanager
    def start(self, generation: str, script: str, *args: str) -> Iterator["Conversation"]:
        """Start scripts/<script> for a conversation: the test reads its JSON lines and says when to go on."""
        environment = {**os.environ, "STUDIO_HOST": self.host, "STUDIO_PORT": str(self.port), "STUDIO_USER": "admin",
                       "STUDIO_PASSWORD": PASSWORD}
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        process = subprocess.Popen([str(client_python(generation)), str(SCRIPTS / script), *args], text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=environment, cwd=str(SCRIPTS))
        try:
            yield Conversation(process)
        finally:
            process.kill()
            process.wait(10)


@dataclass
class Conversation:
    process: subprocess.Popen

    def read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the script ended: {self.process.stderr.read()[-6000:]}")
            if line.startswith("{"):
                return json.loads(line)

    def next(self) -> None:
        self.process.stdin.write("next\n")
        self.process.stdin.flush()


@pytest.fixture(scope="module")
def studio(live_db):
    from access.bootstrap import bootstrap
    from tests.support.web import serve_web_app

    bootstrap(password=PASSWORD, demo=False)
    with serve_web_app() as url:
        yield Studio(url)
    # A cancelled statement's thread may still be in DuckDB (cancel discards a result, it does not stop
    # the query); an interpreter that exits under it aborts.
    for thread in threading.enumerate():
        if thread.name.startswith("sqlapi-"):
            thread.join(120)
