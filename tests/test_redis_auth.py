"""The embedded Redis, as the stack starts it: workers unpickle whatever is queued, so only a client with the
deployment's password may talk to it at all, on 127.0.0.1 only, and the password is on no command line."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import redis
from django.conf import settings
from rq import Queue

from jobs import queues
from supervision import processes

QUEUE = "warehouse.COMPUTE_WH"


@pytest.fixture
def port(stack) -> int:
    return settings.EMBEDDED_REDIS_PORT


def test_a_client_without_the_password_gets_noauth(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert s.recv(100) == b"-NOAUTH Authentication required.\r\n"
    with pytest.raises(redis.AuthenticationError):  # redis-py opens with HELLO, which Redis refuses the same way
        redis.Redis(port=port).ping()


def test_a_client_without_the_password_cannot_enqueue_a_job(port):
    before = queues.connection().llen(f"rq:queue:{QUEUE}")
    for outsider in (redis.Redis(port=port), redis.Redis(port=port, password="guessed")):
        with pytest.raises(redis.AuthenticationError):
            Queue(QUEUE, connection=outsider).enqueue(print, "a pickled payload a worker would run")
    assert queues.connection().llen(f"rq:queue:{QUEUE}") == before


def test_the_stacks_own_client_has_the_password_from_var(port):
    assert settings.REDIS_PASSWORD == (settings.DATA_DIR / "redis-password.txt").read_text().strip()
    assert (settings.DATA_DIR / "redis-password.txt").stat().st_mode & 0o777 == 0o600
    assert queues.connection().ping() is True


def test_redis_listens_on_loopback_only_and_keeps_the_password_off_its_command_line(stack, port):
    assert queues.connection().config_get("bind") == {"bind": "127.0.0.1"}
    assert queues.connection().config_get("protected-mode") == {"protected-mode": "yes"}
    cmdline = Path(f"/proc/{stack.processes['redis'].pid}/cmdline").read_bytes().decode()
    assert settings.REDIS_PASSWORD not in cmdline


def test_a_password_of_any_characters_reaches_redis_as_it_is(tmp_path):
    """STUDIO_REDIS_PASSWORD is the operator's to choose: quotes, spaces and backslashes included."""
    port, password = processes.free_port(), 'a "quoted" pass\\word with spaces'
    server = processes.start_redis(port, tmp_path / "redis", password=password,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert redis.Redis(port=port, password=password).ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password='a "quoted" pass\\\\word with spaces').ping()
    finally:
        processes.stop(server)
