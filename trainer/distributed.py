"""Data parallel training over several devices of one machine: one process per device.

Every process (rank) loads the model, encodes the same rows and walks the same batches in the same
order; a training step takes one batch per rank, and the LoRA gradients are summed across ranks before
the optimizer step, normalised by the labelled tokens of all of the step's batches, so every rank keeps
identical weights. Rank 0 is the caller's own process: it alone reports through the hooks, decides
whether to cancel (and tells the others), writes checkpoints and, after training, checks and saves the
adapter. The other ranks are spawned processes that die with rank 0.

NCCL connects CUDA devices, gloo the CPU (which is how the tests exercise all of this without GPUs).
"""
from __future__ import annotations

import ctypes
import os
import signal
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch

# A rank waits this long for the others at each exchange: long enough for rank 0 to write a checkpoint
# or run an evaluation shard, short enough that a rank that died does not hang the job for hours.
EXCHANGE_TIMEOUT = timedelta(minutes=10)


@dataclass
class Group:
    """The ranks of one run, as the training loop sees them. world == 1: every method is the identity."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:  # this rank had no batch in the step
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)

    def agree(self, leaders_answer: bool) -> bool:
        """Rank 0's answer, on every rank."""
        if self.world == 1:
            return leaders_answer
        t = torch.tensor([1 if (self.leader and leaders_answer) else 0], device=self.device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def finish(self) -> "Group":
        """Leave the group; what follows runs on this rank alone."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        return Group(rank=self.rank, world=1, device=self.device)


def parse_devices(spec: str) -> list[str]:
    """'cpu', 'cuda', 'cuda:1', 'cuda:0-3', 'cuda:0,2' -> the torch devices. ValueError otherwise."""
    spec = spec.strip().lower()
    if spec in ("cpu", "cuda"):
        return [spec if spec == "cpu" else "cuda:0"]
    if not spec.startswith("cuda:"):
        raise ValueError(spec)
    indices: list[int] = []
    for part in spec.removeprefix("cuda:").split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise ValueError(spec)
        indices += range(int(low), int(high) + 1) if dash else [int(low)]
    if len(set(indices)) != len(indices):
        raise ValueError(spec)
    return [f"cuda:{i}" for i in indices]


def _init(rank: int, world: int, device: str, rendezvous: str) -> Group:
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank,
                                         world_size=world, timeout=EXCHANGE_TIMEOUT)
    return Group(rank=rank, world=world, device=device)


def _rank_main(run_rank: Callable[..., None], rank: int, world: int, rendezvous: str, config: Any,
               train_rows: list, val_rows: list) -> None:
    """A spawned rank: train alongside rank 0 with `run_rank` (train.run_rank, passed in so that this module,
    which train.py imports, does not import it back), report nothing."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with rank 0 (a killed job's horse)
    except (OSError, AttributeError):
        pass
    group = _init(rank, world, config.devices[rank], rendezvous)
    try:
        run_rank(config, train_rows, val_rows, group)
    finally:
        group.finish()


class Ranks:
    """Rank 0's view: spawns the others on entry, joins or kills them on exit."""

    def __init__(self, config: Any, train_rows: Sequence, val_rows: Sequence, run_rank: Callable[..., None]) -> None:
        self.config, self.train_rows, self.val_rows = config, list(train_rows), list(val_rows)
        self.run_rank = run_rank
        self.processes: list[Any] = []

    def __enter__(self) -> Group:
        world = len(self.config.devices)
        self.tmp = tempfile.TemporaryDirectory(prefix="studio-ranks-")
        rendezvous = os.path.join(self.tmp.name, "rendezvous")
        context = torch.multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA or OpenMP state
        child_config = replace(self.config, output_dir=os.path.join(self.tmp.name, "unused"))
        for rank in range(1, world):
            process = context.Process(target=_rank_main, daemon=True,
                                      args=(self.run_rank, rank, world, rendezvous, child_config, self.train_rows,
                                            self.val_rows))
            process.start()
            self.processes.append(process)
        self.group = _init(0, world, self.config.devices[0], rendezvous)
        return self.group

    def __exit__(self, exc_type, exc, tb) -> None:
        self.group.finish()
        for process in self.processes:
            process.join(timeout=30 if exc_type is None else 5)
            if process.is_alive():
                process.kill()
                process.join()
        self.tmp.cleanup()
