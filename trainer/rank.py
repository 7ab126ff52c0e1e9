"""One rank of a distributed run: what torchrun starts on every host (launch.py builds the command).

    python -m trainer.rank --channel HOST:PORT --devices cpu | cuda:0,cuda:1

It fetches the run from the launcher over the channel, joins the process group torchrun set up, trains, and
(rank 0) reports through the channel. Exit status 0 for a run that ended or was cancelled, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import asdict
from typing import Any

from .channel import Connection
from .config import TrainConfig
from .distributed import join_group
from .hooks import StepMetrics, TrainingCancelled, TrainingHooks
from .out_of_memory import TrainingOutOfMemory
from .train import run_rank


class ChannelHooks(TrainingHooks):
    """Rank 0's hooks: everything goes to the launcher, which calls its caller's hooks."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def on_phase(self, phase: str) -> None:
        self.connection.send(phase=phase)

    def on_step(self, m: StepMetrics) -> None:
        self.connection.send(step=asdict(m))

    def on_eval(self, epoch: float, validation_loss: float, step: int | None = None) -> None:
        self.connection.send(eval=[epoch, validation_loss, step])

    def on_resume(self, step: int) -> None:
        self.connection.send(resume=step)

    def should_cancel(self) -> bool:
        self.connection.send(ask="cancel")
        return bool(self.connection.receive()["cancel"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.rank")
    parser.add_argument("--channel", required=True, help="the launcher's HOST:PORT")
    parser.add_argument("--devices", required=True, help="this host's devices, by local rank, comma-separated")
    args = parser.parse_args(argv)

    connection = Connection.connect(args.channel)
    rank = int(os.environ["RANK"])
    connection.send(hello={"rank": rank, "host": socket.gethostname(), "pid": os.getpid()})
    run = connection.receive()
    connection.sock.settimeout(None)  # rank 0 waits for cancel answers as long as the launcher takes
    devices = args.devices.split(",")
    config = TrainConfig(**(run["config"] | {"devices": devices, "device": devices[int(os.environ["LOCAL_RANK"])]}))
    train_rows = [tuple(r) for r in run["train_rows"]]
    val_rows = [tuple(r) for r in run["val_rows"]]
    outcome: dict[str, Any]
    status = 0
    try:
        group = join_group(devices)
        try:
            result = run_rank(config, train_rows, val_rows,
                              ChannelHooks(connection) if group.leader else TrainingHooks(), group)
            outcome = {"result": asdict(result)} if result is not None else {"done": True}
        finally:
            group.finish()
    except TrainingCancelled:
        outcome = {"cancelled": True}
    except TrainingOutOfMemory as exc:
        outcome, status = {"error": {"message": str(exc), "out_of_memory": True}}, 1
    except Exception as exc:
        outcome, status = {"error": {"message": f"{type(exc).__name__}: {exc}", "out_of_memory": False}}, 1
    connection.send(bye=rank, **outcome)
    connection.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
