"""`manage.py runstack` (what `bin/start` runs) on a deployment of its own, its children killed outright
(SIGKILL, as the out-of-memory killer does) one after the other: the stack stays up, each comes back and
the line says which died, how and when it is restarted; the job a killed worker was training carries on
from its checkpoint under the restarted worker at once and ends SUCCESS. A process that dies at every start
stops the stack, saying which and where its log is.

The deployment is tests/support/deployments.py's (its own data directory, SQLite database and ports, the
tiny Llama as its base model, driven through its SQL API), started by runstack instead of process by process.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from supervision import processes
from tests.support.deployments import BASE_MODEL, TINY_LLAMA_IMPORT, Deployment
from trainer.checkpoint import saved_step

pytestmark = pytest.mark.slow

DB = "SUPERVISED"
# About 45 steps over two epochs, 15 s on two idle cores: time to kill it mid-way.
ROWS = [(f"Ticket {i}: where is my order?", "Thank you for contacting ACME support.") for i in range(200)]
FINAL = ("SUCCESS", "ERROR", "CANCELLED")


class SupervisedDeployment(Deployment):
    """A deployment whose processes are runstack's children; the test only reads runstack's output."""

    def __init__(self, root, account: str) -> None:
        super().__init__(root, account)
        self.lines: list[str] = []
        self.runstack: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        # A checkpoint every second, so a job killed a few seconds in has one to carry on from.
        return super().env() | {"STUDIO_CHECKPOINT_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}

    def start_stack(self, *args: str) -> subprocess.Popen:
        self.lines = []
        self.runstack = subprocess.Popen(self._manage_argv("runstack", "--port", str(self.web_port), *args),
                                         cwd=processes.BASE_DIR, env=self.env(), text=True, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=lambda: self.lines.extend(iter(self.runstack.stdout.readline, "")), daemon=True).start()
        return self.runstack

    def output(self) -> str:
        return "".join(self.lines)

    def line(self, pattern: str, timeout: float = 60, after: int = 0) -> re.Match:
        """The first line of runstack's output from `after` on that matches."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[after:]:
                if found := re.search(pattern, line):
                    return found
            assert time.monotonic() < deadline, f"no line /{pattern}/ in runstack's output:\n{self.output()[-6000:]}"
            time.sleep(0.2)

    def pid(self, role: str) -> int:
        """The pid runstack last said it started `role` as."""
        started = [m for line in self.lines if (m := re.match(rf"{re.escape(role)} started.* \(pid (\d+),", line))]
        assert started, f"runstack never said it started {role}:\n{self.output()[-4000:]}"
        return int(started[-1][1])

    def kill(self, role: str) -> tuple[int, int]:
        """SIGKILL to `role`; back once runstack has started it again: (old pid, new pid)."""
        pid, mark = self.pid(role), len(self.lines)
        os.kill(pid, signal.SIGKILL)
        died = self.line(rf"^{re.escape(role)} \(pid {pid}\) was killed by SIGKILL after \d+ s; restarting it in "
                         rf"(\d+) s \(log {re.escape(str(self.data_dir / 'logs'))}/[\w.-]+\.log\)$", 30, after=mark)
        again = self.line(rf"^{re.escape(role)} started again \(restart \d+\) \(pid (\d+),", 60, after=mark)
        assert int(died[1]) <= 2 and int(again[1]) != pid
        assert self.runstack.poll() is None, f"the stack stopped:\n{self.output()[-4000:]}"
        return pid, int(again[1])

    def describe(self, job_id: str) -> dict:
        return json.loads(self.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job_id}')"))

    def wait_for(self, job_id: str, statuses: tuple[str, ...], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while (described := self.describe(job_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"{described}\n{self.output()[-6000:]}"
            time.sleep(0.5)
        return described

    def stop_stack(self) -> int:
        if self.runstack is None or self.runstack.poll() is not None:
            return self.runstack.returncode if self.runstack else 0
        self.runstack.send_signal(signal.SIGINT)  # Ctrl+C
        try:
            return self.runstack.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.runstack.pid, signal.SIGKILL)
            raise


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" in status.read()
    except FileNotFoundError:
        return True


def wait_gone(pids, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if not gone(p)]}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tiny_llama_dir):
    d = SupervisedDeployment(tmp_path_factory.mktemp("runstack"), "SUPERVISED")
    d.manage("migrate", "-v0")
    d.manage("basemodels", "import", BASE_MODEL, "--from", str(tiny_llama_dir), *TINY_LLAMA_IMPORT)
    d.manage("bootstrap", "--no-demo")
    yield d
    d.stop_stack()


def test_each_child_killed_comes_back_and_the_killed_workers_job_finishes(deployment):
    d = deployment
    d.start_stack()
    d.line(r"The studio is running at http://127\.0\.0\.1:\d+/", 180)
    everyone = [d.pid(role) for role in ("redis", "worker COMPUTE_WH-1", "inference", "web")]
    try:
        d.sql(f"CREATE DATABASE {DB}")
        d.sql(f"CREATE TABLE {DB}.public.tickets (prompt VARCHAR, completion VARCHAR)")
        d.sql(f"INSERT INTO {DB}.public.tickets VALUES " + ", ".join(f"('{p}', '{c}')" for p, c in ROWS))
        job_id = d.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{DB}.public.support', '{BASE_MODEL}', "
                         f"'SELECT prompt, completion FROM {DB}.public.tickets', NULL, '{{\"max_epochs\": 2}}')")
        checkpoint = d.data_dir / "models" / "checkpoints" / job_id
        deadline = time.monotonic() + 90
        while (saved_step(checkpoint) or 0) < 3:
            assert time.monotonic() < deadline, f"no checkpoint at step 3:\n{d.log('worker-COMPUTE_WH-1')}"
            time.sleep(0.2)

        # The worker, while its job trains: the restarted worker takes the job over as it starts.
        killed_at = time.monotonic()
        _, new = d.kill("worker COMPUTE_WH-1")
        everyone.append(new)
        worker_log = d.data_dir / "logs" / "worker-COMPUTE_WH-1.log"
        deadline = time.monotonic() + 30
        while f"Job {job_id} was left IN_PROGRESS by a worker that was killed: queued to carry on from its " \
              "checkpoint" not in worker_log.read_text():
            assert time.monotonic() < deadline, d.log("worker-COMPUTE_WH-1")
            time.sleep(0.2)
        assert time.monotonic() - killed_at < 40, "taken over at once, not after RQ's abandoned-job timeout"
        assert d.wait_for(job_id, ("IN_PROGRESS", *FINAL), 60)["status"] == "IN_PROGRESS", "claimed again"

        # Redis, while the job trains on: its queues come back with it, and the worker waits it out.
        worker = d.pid("worker COMPUTE_WH-1")
        _, new = d.kill("redis")
        everyone.append(new)
        # The inference server: it comes back and serves the fine-tuned model once trained.
        _, new = d.kill("inference")
        everyone.append(new)
        described = d.wait_for(job_id, FINAL, 150)
        assert described["status"] == "SUCCESS", f"{described}\n{d.log('worker-COMPUTE_WH-1')}"
        assert d.pid("worker COMPUTE_WH-1") == worker, "the worker rode Redis's restart out"
        processes.wait_until(lambda: processes.http_ok(f"{d.inference_url}/health"), 120, "the inference server")
        answer = json.loads(d.value(f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{DB}.public.support', 'Ticket 7: where "
                                    "is my order?', {'temperature': 0, 'max_tokens': 8})"))
        assert answer["choices"][0]["messages"].startswith("Thank you"), answer

        # The web app (uvicorn's master; its worker processes, which would keep the port, go with it).
        _, new = d.kill("web")
        everyone.append(new)
        processes.wait_until(lambda: d.sql("SELECT 1 AS one") == [{"ONE": "1"}], 60, "the web app")
        assert json.loads(d.value("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')"))[0]["status"] == "SUCCESS"

        assert d.runstack.poll() is None
        assert "stopping the stack" not in d.output().lower()
    finally:
        code = d.stop_stack()
    assert code == 0 and "Stopping the stack (SIGINT)" in d.output()
    wait_gone(everyone)
    for port in (d.web_port, d.inference_port, d.redis_port):
        assert not processes.port_open(port), f"port {port} still open after Ctrl+C"


def test_a_process_that_dies_at_every_start_stops_the_stack_saying_which_and_where_its_log_is(deployment):
    d = deployment
    with socket.socket() as squatter:  # someone else holds the web app's port
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", d.web_port))
        squatter.listen()
        d.start_stack("--give-up-after", "2")
        try:
            code = d.runstack.wait(240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runstack did not give up:\n{d.output()[-6000:]}")
    output = d.output()
    assert code == 1, output[-4000:]
    log = d.data_dir / "logs" / "web.log"
    gave_up = re.search(r"^web \(pid (\d+)\) exited with code \d+ \d+ s after starting: it died 2 times in a row "
                        r"at start \(before it was ready, or within 30 s of starting\), so it is not started again\. "
                        r"Stopping the stack\. Its log: (\S+)$", output, re.M)
    assert gave_up, output[-4000:]
    assert gave_up[2] == str(log)
    assert "address already in use" in output[gave_up.end():].lower(), "the message shows the end of its log"
    assert log.read_text().lower().count("address already in use") >= 2
    assert "The studio is running" not in output
    started = [int(m[1]) for m in re.finditer(r"^\S+(?: \S+)? started.* \(pid (\d+),", output, re.M)]
    wait_gone(started)
    for port in (d.inference_port, d.redis_port):
        assert not processes.port_open(port)
