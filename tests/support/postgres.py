"""A throwaway PostgreSQL server for the suite's PostgreSQL pass (STUDIO_TEST_DATABASE=postgres).

tests/settings.py calls server_url() before Django is configured: the first process of a test run
initdb's a cluster into a temporary directory and starts it on a free loopback port; the processes the
tests start (workers, inference servers, web apps) inherit STUDIO_TEST_POSTGRES_URL and use that same
server. The cluster is stopped and deleted when the process that started it exits.

PostgreSQL refuses to run as root, and the tests run as root in CI: then initdb and pg_ctl run as the
`postgres` user Debian's packages create. No Django imports here (settings do not exist yet).
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from supervision.processes import free_port

URL_VARIABLE = "STUDIO_TEST_POSTGRES_URL"
DATABASE = "studio_test"
# Debian's packages keep the server binaries out of the PATH; 15 is what these machines install.
BIN_DIRS = ("/usr/lib/postgresql/15/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
# Durability is worthless for a cluster deleted at exit, and fsync per commit would dominate the pass.
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
                  " -c listen_addresses=127.0.0.1")


def server_url() -> str:
    """The test run's server: the one a parent process started, or a new one."""
    if os.environ.get(URL_VARIABLE):
        return os.environ[URL_VARIABLE]
    url = start()
    os.environ[URL_VARIABLE] = url
    return url


def bin_dir() -> Path:
    for candidate in (os.environ.get("STUDIO_TEST_POSTGRES_BIN"), *BIN_DIRS):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("STUDIO_TEST_DATABASE=postgres needs PostgreSQL's server binaries (initdb, pg_ctl): "
                       "apt-get install postgresql-15, or point STUDIO_TEST_POSTGRES_BIN at their directory")


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start() -> str:
    binaries = bin_dir()
    root = Path(tempfile.mkdtemp(prefix="studio-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    run = lambda *command: subprocess.run(_as_server_user([str(c) for c in command]), check=True,  # noqa: E731
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # C.UTF-8: the one UTF-8 locale every Debian image has; trust: only loopback, only this run.
        run(binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8")
        run(binaries / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "start",
            "-o", f"{SERVER_OPTIONS} -p {port} -k {root}")
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = exc.stdout.decode(errors="replace") + (log.read_text() if log.exists() else "")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL ({' '.join(exc.cmd)}):\n{detail}") from None
    owner = os.getpid()

    def stop() -> None:
        if os.getpid() != owner:  # a forked child (an RQ work horse) must not stop its parent's server
            return
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    # Django's test runner creates and drops DATABASE itself, connecting to the `postgres` database.
    return f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"
