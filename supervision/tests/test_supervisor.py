"""The supervisor's rules on real (tiny) processes: a child that dies is started again after a delay that
doubles while it keeps dying at start, a line says which, how and when; one that dies at every start makes
it give up saying where its log is; a dead child's leftovers go with it; children die with the supervisor."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from supervision.supervisor import GaveUp, Policy, Role, Supervisor, log_name

FAST = Policy(first_delay_s=0.05, max_delay_s=0.2, start_window_s=10, give_up_after=4)


def shell(script: str):
    def start(**popen) -> subprocess.Popen:
        return subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, **popen)
    return start


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


def until(check, timeout: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def said():
    return []


def supervisor(tmp_path: Path, said: list[str], *roles: tuple[str, str], policy: Policy = FAST) -> Supervisor:
    return Supervisor([Role(name, shell(script), tmp_path / f"{log_name(name)}.log") for name, script in roles],
                      policy, say=said.append)


def test_the_policy_doubles_the_delay_from_the_first_up_to_the_cap():
    policy = Policy()
    assert [policy.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert (policy.give_up_after, policy.start_window_s) == (5, 30)


def test_a_killed_child_is_started_again_and_the_line_names_it_how_it_ended_and_the_delay(tmp_path, said):
    sup = supervisor(tmp_path, said, ("worker COMPUTE_WH-1", "echo working; exec sleep 60"),
                     policy=Policy(first_delay_s=0.05, start_window_s=0))
    sup.start_all()
    try:
        first = sup.roles[0].process
        assert said == [f"worker COMPUTE_WH-1 started (pid {first.pid}, log {tmp_path}/worker-COMPUTE_WH-1.log)"]
        until(lambda: "working" in (tmp_path / "worker-COMPUTE_WH-1.log").read_text())
        os.kill(first.pid, signal.SIGKILL)
        until(lambda: sup.step() or sup.roles[0].process is not first, what="not restarted")
        second = sup.roles[0].process
        assert said[1] == (f"worker COMPUTE_WH-1 (pid {first.pid}) was killed by SIGKILL after 0 s; restarting it "
                           f"in 0.05 s (log {tmp_path}/worker-COMPUTE_WH-1.log)")
        assert said[2] == f"worker COMPUTE_WH-1 started again (restart 1) (pid {second.pid}, log " \
                          f"{tmp_path}/worker-COMPUTE_WH-1.log)"
        assert second.poll() is None and os.getpgid(second.pid) == second.pid  # a group of its own
        until(lambda: (tmp_path / "worker-COMPUTE_WH-1.log").read_text().count("working") == 2)
        log = (tmp_path / "worker-COMPUTE_WH-1.log").read_text()
        assert "worker COMPUTE_WH-1 was killed by SIGKILL ---" in log
    finally:
        sup.stop_all(lambda p: (p.terminate(), p.wait()))
    assert sup.roles[0].process.poll() is not None


def test_a_child_dying_at_every_start_is_restarted_with_doubling_delays_then_it_gives_up(tmp_path, said):
    sup = supervisor(tmp_path, said, ("web", "sleep 60"), ("inference", "echo 'address already in use'; exit 3"))
    started = time.monotonic()
    sup.start_all()
    try:
        with pytest.raises(GaveUp) as gave_up:
            sup.run(interval=0.01)
        assert time.monotonic() - started < 5
        delays = [line.split("restarting it in ")[1].split(" s")[0] for line in said if "restarting" in line]
        assert delays == ["0.1", "0.2", "0.2"]  # 0.05 doubled per death at start, up to the cap
        message = str(gave_up.value)
        assert message.startswith("inference (pid ")
        assert (" exited with code 3 0 s after starting: it died 4 times in a row at start (before it was ready, "
                f"or within 10 s of starting), so it is not started again. Stopping the stack. Its log: "
                f"{tmp_path}/inference.log") in message
        assert message.endswith("  address already in use\n  --- " + message.rsplit("--- ", 1)[1])
        assert "exited with code 3 ---" in message.splitlines()[-1]
        assert (tmp_path / "inference.log").read_text().count("address already in use") == 4
        assert sup.roles[0].process.poll() is None, "the other child is left for the caller to stop"
    finally:
        sup.stop_all(lambda p: (p.terminate(), p.wait()))


def test_a_child_that_lived_past_the_start_window_starts_counting_again(tmp_path, said):
    clock = [0.0]
    sup = Supervisor([Role("web", shell("exit 1"), tmp_path / "web.log")],
                     Policy(first_delay_s=1, start_window_s=30, give_up_after=2), say=said.append,
                     clock=lambda: clock[0])
    sup.start_all()
    until(lambda: sup.roles[0].process.poll() is not None)
    clock[0] = 100.0  # it "lived" 100 s: not a death at start
    sup.step()
    assert said[-1].endswith("exited with code 1 after 100 s; restarting it in 1 s (log " + str(tmp_path / "web.log") + ")")
    clock[0] = 101.0
    sup.step()  # restarted; it dies at once this time: 1 of 2
    until(lambda: sup.roles[0].process.poll() is not None)
    sup.step()
    assert "restarting it in 2 s" in said[-1]
    clock[0] = 103.0
    sup.step()
    until(lambda: sup.roles[0].process.poll() is not None)
    with pytest.raises(GaveUp, match=r"died 2 times in a row at start \(before it was ready, or within 30 s"):
        sup.step()


def test_a_child_that_dies_before_it_is_ready_died_at_start_however_long_it_took(tmp_path, said):
    # A base model that loads for minutes, then a port someone else holds: still a death at start.
    clock = [0.0]
    port_open = [False]
    sup = Supervisor([Role("inference", shell("exit 3"), tmp_path / "inference.log", ready=lambda: port_open[0])],
                     Policy(first_delay_s=1, start_window_s=30, give_up_after=2), say=said.append,
                     clock=lambda: clock[0])
    sup.start_all()
    until(lambda: sup.roles[0].process.poll() is not None)
    clock[0] = 500.0
    sup.step()
    assert said[-1].startswith("inference (pid ") and "exited with code 3 after 500 s; restarting it in 2 s" in said[-1]
    clock[0] = 502.0
    sup.step()
    until(lambda: sup.roles[0].process.poll() is not None)
    clock[0] = 1000.0
    with pytest.raises(GaveUp, match="exited with code 3 498 s after starting: it died 2 times in a row at start"):
        sup.step()


def test_wait_ready_waits_for_every_child_and_names_those_that_are_not(tmp_path, said):
    answers = {"web": False}
    sup = Supervisor([Role("web", shell("exec sleep 60"), tmp_path / "web.log", ready=lambda: answers["web"]),
                      Role("worker COMPUTE_WH-1", shell("exec sleep 60"), tmp_path / "w.log")], FAST, say=said.append)
    sup.start_all()
    try:
        with pytest.raises(RuntimeError, match=r"^web not ready after 0 s$"):
            sup.wait_ready(0.2, interval=0.01)
        answers["web"] = True
        sup.wait_ready(5, interval=0.01)
        assert all(role.ready_at is not None for role in sup.roles)
    finally:
        sup.stop_all(lambda p: (p.terminate(), p.wait()))


def test_a_dead_childs_leftover_processes_go_with_it(tmp_path, said):
    # As uvicorn's worker processes outlive a master killed outright, holding its port.
    sup = supervisor(tmp_path, said, ("web", "sleep 60 & echo leftover $!; wait"), policy=Policy(first_delay_s=60))
    sup.start_all()
    log = tmp_path / "web.log"
    until(lambda: "leftover" in log.read_text())
    leftover = int(log.read_text().split("leftover ")[1].split()[0])
    assert alive(leftover)
    os.kill(sup.roles[0].process.pid, signal.SIGKILL)
    until(lambda: sup.step() or sup.roles[0].restart_at is not None, what="its death not noticed")
    until(lambda: not alive(leftover), 5, "the dead child's leftover still runs")
    sup.stop_all(lambda p: None)


def test_children_die_with_the_supervisor_however_it_dies(tmp_path):
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from supervision.supervisor import Role, Supervisor
        sup = Supervisor([Role("web", lambda **p: subprocess.Popen(["sleep", "60"], **p), __import__("pathlib").Path({str(tmp_path / "web.log")!r}))],
                         say=lambda m: print(m, flush=True))
        sup.start_all()
        sup.run()
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline()
    child = int(line.split("(pid ")[1].split(",")[0])
    assert alive(child)
    parent.kill()
    parent.wait()
    until(lambda: not alive(child), 5, "the child outlived its supervisor")


def test_a_restart_that_fails_to_start_is_a_death_at_start(tmp_path, said):
    # As start_redis raises when Redis exits before it answers PING.
    starts = []

    def start(**popen):
        starts.append(1)
        if len(starts) > 1:
            raise RuntimeError("redis-server exited with code 1 before it was ready")
        return subprocess.Popen(["sh", "-c", "exit 1"], stdin=subprocess.DEVNULL, **popen)

    sup = Supervisor([Role("redis", start, tmp_path / "redis.log")], FAST, say=said.append)
    sup.start_all()
    with pytest.raises(GaveUp) as gave_up:
        sup.run(interval=0.01)
    assert len(starts) == 4
    assert str(gave_up.value).startswith("redis failed to start (redis-server exited with code 1 before it was "
                                         "ready) 0 s after starting: it died 4 times in a row at start")
    assert "could not start: redis-server exited with code 1 before it was ready" in (tmp_path / "redis.log").read_text()
