"""Launching a distributed run the way clusters do: a torchrun agent per host, meeting at a c10d rendezvous.

    this host:    python -m torch.distributed.run --nnodes N --nproc-per-node D --rdzv-backend c10d
                      --rdzv-endpoint HOST:PORT --rdzv-id RUN --rdzv-conf is_host=1 ... -m trainer.rank ...
    other hosts:  the same with is_host=0 (join_command), started by that host's worker

The process that calls train() (a job's worker) starts this host's agent, which hosts the rendezvous' store,
and serves the channel (channel.py): every rank fetches the run from it and rank 0, wherever the rendezvous
put it, reports through it. This process calls the caller's hooks with those reports and answers rank 0's
cancel questions, so a cancel reaches every rank at the same step (distributed.Group.agree). Rank 0 writes
checkpoints and the adapter where the config says: on a run over several hosts those directories must be
shared (they are under the model store, which is).

A rank that dies (killed, out of memory) closes its connection without a goodbye: the run stops, every
agent's ranks with it (gloo and NCCL fail the survivors' next exchange), and RankFailed names the rank.
"""
from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from .channel import Connection
from .config import TrainConfig, batches_per_step, world_size
from .hooks import StepMetrics, TrainingCancelled, TrainingHooks, TrainResult
from .out_of_memory import TrainingOutOfMemory

log = logging.getLogger(__name__)

# How often the launcher asks the hooks itself while no rank asks (starting up, waiting for other hosts).
IDLE_CANCEL_CHECK_S = 2.0
# After a run ended (or failed), how long the ranks and this host's agent get to exit by themselves.
EXIT_GRACE_S = 60.0


class RankFailed(Exception):
    """A rank or an agent stopped the run. str(error) is a complete message for the job's error field."""


def agent_command(join: dict[str, Any], devices: Sequence[str], hosts_store: bool) -> list[str]:
    """torchrun's command line for one host of the run described by `join` (see train_distributed)."""
    conf = f"is_host={1 if hosts_store else 0},join_timeout={int(join['join_timeout_s'])}"
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(join["nodes"]),
            "--nproc-per-node", str(len(devices)), "--rdzv-backend", "c10d", "--rdzv-endpoint", join["rendezvous"],
            "--rdzv-id", join["run_id"], "--rdzv-conf", conf, "--max-restarts", "0",
            "-m", "trainer.rank", "--channel", join["channel"], "--devices", ",".join(devices)]


def join_command(join: dict[str, Any], devices: Sequence[str]) -> list[str]:
    """What another host runs to join the run that hooks.on_launch(join) announced."""
    return agent_command(join, devices, hosts_store=False)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """The agent is stopped (and stops its ranks) if this process is killed: a cancelled job's work horse."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Run:
    """What this process has heard from the ranks so far."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.ranks: dict[int, dict[str, Any]] = {}  # rank -> hello
        self.connections: dict[Connection, int | None] = {}  # rank, once it said hello
        self.finished: dict[int, dict[str, Any]] = {}  # rank -> its goodbye
        self.died: list[int] = []  # ranks whose connection closed without a goodbye

    def describe(self, rank: int) -> str:
        hello = self.ranks.get(rank, {})
        return f"rank {rank} of {self.world} (process {hello.get('pid', '?')} on {hello.get('host', '?')})"

    @property
    def over(self) -> bool:
        return bool(self.died) or 0 in self.finished or any("error" in bye for bye in self.finished.values())


def train_distributed(config: TrainConfig, train_rows: Sequence, val_rows: Sequence,
                      hooks: TrainingHooks) -> TrainResult:
    """train() over world_size(config) ranks (see module docstring)."""
    world = world_size(config)
    # Fixed here for every rank, and for any later run carrying on from this one's checkpoint.
    config = replace(config, batches_per_step=batches_per_step(config))
    listener = socket.create_server((config.host if config.nodes == 1 else "", 0))
    listener.setblocking(False)
    join = {"nodes": config.nodes, "run_id": uuid.uuid4().hex,
            "rendezvous": f"{config.host}:{config.rendezvous_port or _free_port(config.host)}",
            "channel": f"{config.host}:{listener.getsockname()[1]}", "join_timeout_s": config.join_timeout_s}
    payload = {"config": asdict(config), "train_rows": [list(r) for r in train_rows],
               "val_rows": [list(r) for r in val_rows]}
    devices = list(config.devices or [config.device])
    with tempfile.TemporaryDirectory(prefix="studio-launch-") as tmp:
        log_path = Path(tmp) / "agent.log"
        with open(log_path, "wb") as agent_log:
            agent = subprocess.Popen(agent_command(join, devices, hosts_store=True), stdout=agent_log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        run = _Run(world)
        try:
            if config.nodes > 1:
                hooks.on_launch(join)
            _serve(run, listener, agent, payload, hooks)
        finally:
            listener.close()
            # Every rank said goodbye: the agents are only closing the rendezvous (seconds, on a busy machine),
            # and this host's, which holds its store, must stay until the others have. Otherwise stop it.
            if len(run.finished) < world:
                _stop(agent)
        return _outcome(run, agent, log_path, config)


def _serve(run: _Run, listener: socket.socket, agent: subprocess.Popen, payload: dict[str, Any],
           hooks: TrainingHooks) -> None:
    world = run.world
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    last_cancel_check = time.monotonic()
    ended_at = None
    while True:
        if run.over and ended_at is None:
            ended_at = time.monotonic()
            if run.died:  # the run cannot go on without it: stop this host's ranks now rather than at a timeout
                _stop(agent)
        if len(run.finished) == world:
            return
        if ended_at is not None and (not run.connections and agent.poll() is not None
                                     or time.monotonic() - ended_at > EXIT_GRACE_S):
            return
        if agent.poll() is not None and not run.connections and (len(run.finished) + len(run.died) == world or
                                                                 not run.ranks):
            return  # every rank has gone (or the agent never started one)
        for key, _ in selector.select(timeout=0.5):
            if key.fileobj is listener:
                sock, _ = listener.accept()
                sock.setblocking(False)
                connection = Connection(sock)
                run.connections[connection] = None
                selector.register(sock, selectors.EVENT_READ, connection)
                continue
            connection = key.data
            messages, closed = connection.messages()
            for message in messages:
                _handle(run, connection, message, payload, hooks)
                if "ask" in message:
                    last_cancel_check = time.monotonic()
            if closed:
                selector.unregister(connection.sock)
                connection.close()
                rank = run.connections.pop(connection)
                if rank is not None and rank not in run.finished:
                    run.died.append(rank)
        if (ended_at is None and 0 not in run.ranks and time.monotonic() - last_cancel_check > IDLE_CANCEL_CHECK_S):
            last_cancel_check = time.monotonic()
            if hooks.should_cancel():  # no rank 0 to ask it yet: the ranks are starting or waiting for hosts
                _stop(agent)
                raise TrainingCancelled("Training was cancelled.")


def _handle(run: _Run, connection: Connection, message: dict[str, Any], payload: dict[str, Any],
            hooks: TrainingHooks) -> None:
    if "hello" in message:
        hello = message["hello"]
        run.ranks[hello["rank"]] = hello
        run.connections[connection] = hello["rank"]
        connection.sock.setblocking(True)
        connection.send(**payload)
        connection.sock.setblocking(False)
        if len(run.ranks) == run.world:
            hooks.on_ranks([run.ranks[r] for r in sorted(run.ranks)])
    elif "bye" in message:
        run.finished[message["bye"]] = message
    elif "phase" in message:
        hooks.on_phase(message["phase"])
    elif "step" in message:
        hooks.on_step(StepMetrics(**message["step"]))
    elif "eval" in message:
        hooks.on_eval(*message["eval"])
    elif "resume" in message:
        hooks.on_resume(message["resume"])
    elif "ask" in message:
        answer = hooks.should_cancel()
        connection.sock.setblocking(True)
        connection.send(cancel=answer)
        connection.sock.setblocking(False)


def _stop(agent: subprocess.Popen) -> None:
    """SIGTERM: torchrun stops its ranks (SIGTERM, then SIGKILL after its own grace) and exits."""
    if agent.poll() is None:
        agent.terminate()
        try:
            agent.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def _outcome(run: _Run, agent: subprocess.Popen, log_path: Path, config: TrainConfig) -> TrainResult:
    if run.died:
        rank = run.died[0]
        raise RankFailed(f"Training stopped: {run.describe(rank)} exited unexpectedly (killed, or out of memory), "
                         "so the other ranks stopped too.")
    leader = run.finished.get(0, {})
    if "result" in leader:
        return TrainResult(**leader["result"])
    if "cancelled" in leader:
        raise TrainingCancelled("Training was cancelled.")
    errors = sorted((rank, bye["error"]) for rank, bye in run.finished.items() if "error" in bye)
    if errors:
        rank, error = errors[0]
        if error["out_of_memory"]:
            raise TrainingOutOfMemory(error["message"])
        raise RankFailed(f"Training failed on {run.describe(rank)}: {error['message']}")
    tail = log_path.read_text(errors="replace")[-2000:].strip()
    if len(run.ranks) < run.world and "RendezvousTimeoutError" in tail:
        raise RankFailed(f"Training could not start: {config.nodes - 1} other host(s) were to join at "
                         f"{config.host}, but not all did within {config.join_timeout_s:.0f} s.")
    raise RankFailed(f"Training failed: torchrun exited with status {agent.returncode} before the run ended. "
                     f"Its last output: {tail or '(none)'}")

