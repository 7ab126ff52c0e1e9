"""Keeping the stack's processes running: what `manage.py runstack` (and so `bin/start`) does once it has
started them.

A process that dies (an out-of-memory kill of a worker, a crash of the inference server) is started again
after a delay that doubles while it keeps dying soon after starting (1 s, 2 s, 4 s … up to a cap), with a
line naming it, how it ended and the next delay. One that dies within `start_window_s` of starting
`give_up_after` times in a row is not started again: the stack stops, saying which process and where its
log is, rather than loop for ever on a missing file or a port someone else holds. Nothing else stops it
but Ctrl+C or SIGTERM.

Each child runs in a process group of its own, so a dead child's leftovers (uvicorn's worker processes,
which outlive a master killed outright and keep its port) go with it, and it dies with the supervisor
(PR_SET_PDEATHSIG) when the supervisor itself is killed. Its output goes to its log file and, prefixed
with its name, to the supervisor's own output.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
LOG_TAIL_LINES = 12  # of a process that gave up, shown in the message that stops the stack


@dataclass(frozen=True)
class Policy:
    first_delay_s: float = 1.0     # before restarting a process that had been running for a while
    max_delay_s: float = 30.0      # the cap of the doubling delay
    start_window_s: float = 30.0   # a death this soon after starting (or before ready) counts towards giving up
    give_up_after: int = 5         # deaths in a row at start

    def delay(self, quick_deaths: int) -> float:
        """Before the next start, after `quick_deaths` deaths in a row within the start window (0: the
        process had been running longer than that)."""
        return min(self.first_delay_s * 2 ** quick_deaths, self.max_delay_s)


@dataclass
class Role:
    """One process of the stack. `start(**popen)` starts it (again) with the supervisor's Popen keyword
    arguments (its output, its process group) and returns it. `ready()`, if given, says when it serves
    (a port that answers): until then a death is a death at start however long loading took."""
    name: str
    start: Callable[..., subprocess.Popen]
    log: Path
    ready: Callable[[], bool] | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    starts: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None
    readers: list[threading.Thread] = field(default_factory=list)


class GaveUp(Exception):
    """A process kept dying at start; the message says which, how, and where its log is."""


def log_name(role_name: str) -> str:
    """'worker COMPUTE_WH-1' -> 'worker-COMPUTE_WH-1' (its log is logs/<this>.log)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", role_name).strip("-")


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _die_with_supervisor() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies. Its own session
    means a terminal's Ctrl+C or hang-up reaches the supervisor alone, which then stops the children in
    order (the web app before the workers, Redis last)."""
    os.setsid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


try:  # looked up once here: the child between fork and exec should only call it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: children still get their own session
    def _prctl(*_args) -> int:
        return 0


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Supervisor:
    def __init__(self, roles: list[Role], policy: Policy = Policy(), *, say: Callable[[str], None],
                 echo: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.roles, self.policy, self.say, self.echo, self.clock = roles, policy, say, echo, clock
        self.lock = threading.Lock()  # one line at a time on the supervisor's output

    # ---- starting
    def start_all(self) -> None:
        """Each role in order. A role that cannot even be started raises (a configuration error: the
        caller stops what did start); one that starts and dies is restarted by step()."""
        for role in self.roles:
            self._start(role)

    def _start(self, role: Role) -> None:
        role.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(role.log, "ab")
        out.write(f"--- {_stamp()}: starting {role.name} ---\n".encode())
        out.flush()
        role.started_at, role.ready_at = self.clock(), None  # a start that fails is a death at start
        try:
            process = role.start(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_supervisor)
        except BaseException as exc:
            out.write(f"--- {_stamp()}: could not start: {exc} ---\n".encode())
            out.close()
            raise
        role.process, role.restart_at, role.ready_at = process, None, None if role.ready else self.clock()
        role.starts += 1
        stream = getattr(process, "stdout", None)
        if stream is not None:
            reader = threading.Thread(target=self._copy, args=(role.name, stream, out), daemon=True,
                                      name=f"log-{log_name(role.name)}")
            reader.start()
            role.readers = [reader]
        else:
            out.close()
        again = f" again (restart {role.starts - 1})" if role.starts > 1 else ""
        self.tell(f"{role.name} started{again} (pid {getattr(process, 'pid', '?')}, log {role.log})")

    def _copy(self, name: str, stream: IO[bytes], out: IO[bytes]) -> None:
        """A child's output, line by line, into its log and (prefixed) the supervisor's output."""
        try:
            for line in iter(stream.readline, b""):
                out.write(line)
                out.flush()
                if self.echo is not None:
                    with self.lock:
                        try:
                            self.echo(f"{name} | {line.decode(errors='replace').rstrip()}")
                        except (OSError, ValueError):  # the terminal went away: the log still has it
                            pass
        finally:
            out.close()
            stream.close()

    def tell(self, message: str) -> None:
        with self.lock:
            self.say(message)

    # ---- watching
    def step(self) -> None:
        """Notice the children that died and start those whose delay is over. Raises GaveUp."""
        now = self.clock()
        for role in self.roles:
            if role.process is not None and role.restart_at is None:
                returncode = exited(role.process)
                if returncode is not None:
                    self._died(role, returncode, now)
                elif role.ready_at is None and _holds(role.ready):
                    role.ready_at = self.clock()
            if role.restart_at is not None and now >= role.restart_at:
                try:
                    self._start(role)
                except Exception as exc:  # e.g. Redis exited before it answered: a death at start too
                    role.process = None
                    self._died(role, None, self.clock(), failure=str(exc))

    def _died(self, role: Role, returncode: int | None, now: float, failure: str = "") -> None:
        lived = now - role.started_at
        pid = f" (pid {role.process.pid})" if role.process is not None else ""
        how = how_it_ended(returncode) if returncode is not None else f"failed to start ({failure})"
        for reader in role.readers:  # its last lines reach the log before anything is said about it
            reader.join(2)
        self._note(role, how)
        if role.ready_at is None or lived < self.policy.start_window_s:
            role.quick_deaths += 1
        else:
            role.quick_deaths = 0
        if role.quick_deaths >= self.policy.give_up_after:
            role.restart_at = None
            raise GaveUp(
                f"{role.name}{pid} {how} {lived:.0f} s after starting: it died {role.quick_deaths} times in a row at "
                f"start (before it was ready, or within {self.policy.start_window_s:g} s of starting), so it is not "
                f"started again. Stopping the stack. Its log: {role.log}" + tail(role.log))
        delay = self.policy.delay(role.quick_deaths)
        role.restart_at = now + delay
        self.tell(f"{role.name}{pid} {how} after {lived:.0f} s; restarting it in {delay:g} s (log {role.log})")

    def _note(self, role: Role, how: str) -> None:
        with open(role.log, "ab") as out:
            out.write(f"--- {_stamp()}: {role.name} {how} ---\n".encode())

    def wait_ready(self, timeout: float, interval: float = 0.3) -> None:
        """Until every child is ready, supervising meanwhile (a child that dies while the stack starts is
        restarted like any other). Raises GaveUp, or RuntimeError naming those not ready after timeout."""
        deadline = self.clock() + timeout
        while not_ready := [role.name for role in self.roles if role.ready_at is None]:
            if self.clock() >= deadline:
                raise RuntimeError(f"{', '.join(not_ready)} not ready after {timeout:.0f} s")
            self.step()
            time.sleep(interval)

    def run(self, interval: float = 0.5) -> None:
        """Supervise until a signal handler raises, or a process gives up (GaveUp)."""
        while True:
            self.step()
            time.sleep(interval)

    # ---- stopping
    def stop_all(self, stop: Callable[[subprocess.Popen], None]) -> None:
        """The children in reverse order of starting (the web app first, Redis last), each by `stop`
        (SIGTERM, then SIGKILL), then whatever is left in its process group."""
        for role in reversed(self.roles):
            process, role.restart_at = role.process, None
            if process is None:
                continue
            running = process.poll() is None
            stop(process)
            if running:  # a group whose leader died earlier went with it then (exited())
                kill_group(process)
            for reader in role.readers:
                reader.join(2)


def exited(process: subprocess.Popen) -> int | None:
    """The child's exit status once it has ended, else None. Its process group is killed before the child
    is reaped: until then its pid, which is also the group's id, cannot be given to another process."""
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped already (by poll() elsewhere)
        return process.poll()
    if info is None:
        return None
    kill_group(process)
    return process.wait()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to what is left of the child's process group (it leads one: _die_with_supervisor)."""
    pid = getattr(process, "pid", None)
    if not isinstance(pid, int) or pid <= 1:  # killpg(0) would be the supervisor's own group
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _holds(check: Callable[[], bool] | None) -> bool:
    try:
        return bool(check and check())
    except Exception:  # not answering yet
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        last = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\nIts last lines:\n" + "\n".join(f"  {line}" for line in last) if last else ""
