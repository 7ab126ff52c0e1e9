"""Data parallel training with PyTorch's DistributedDataParallel (DDP), one process per device, on one host
or several. launch.py starts the processes the way clusters do (torchrun, c10d rendezvous); this module is
what each of them (a rank) sees of the others.

DDP rather than FSDP or accelerate: a LoRA adapter is a few MB, so every rank holding all of it costs
nothing and sharding it (FSDP's point) would only add exchanges; the frozen base model is loaded by every
rank from the shared model store. What the hand-written all-reduce this replaces lacked is what DDP does:
gradients packed into buckets and reduced while backward is still running, instead of one blocking
all-reduce per tensor after it. accelerate would wrap the same DDP and bring a second launcher.

Every rank walks the same batches in the same order; an optimizer step takes `batches_per_step` of them,
dealt out to the ranks in turn. Gradients are averaged by DDP, so each rank scales its loss by
world / (labelled tokens of the whole step): the average is then the step's mean, exactly what one process
accumulating the same batches computes. Rank 0 alone reports through the hooks, decides whether to cancel
(and tells the others), writes checkpoints and, after training, checks and saves the adapter.

NCCL connects CUDA devices, gloo the CPU (which is how the tests exercise all of this without GPUs).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, ContextManager

import torch

# A rank waits this long for the others at each exchange: long enough for rank 0 to write a checkpoint
# or run an evaluation shard, short enough that a rank that died does not hang the job for hours. (gloo
# notices a peer whose process died at once, from its closed connection; this covers a hung one.)
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

    def agree(self, leaders_answer: bool) -> bool:
        """Rank 0's answer, on every rank."""
        if self.world == 1:
            return leaders_answer
        t = torch.tensor([1 if (self.leader and leaders_answer) else 0], device=self.device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def wrap(self, model: torch.nn.Module, loss_sum: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, int]]
             ) -> torch.nn.Module:
        """`loss_sum(model, batch)` as a module to call with the batch's tensors: under DDP when world > 1.

        DDP reduces the gradients of what runs through its own forward, so the loss is computed inside it
        (loss.py runs the model's body and head separately, never model.forward)."""
        module = _LossOf(model, loss_sum)
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        # Every rank loaded the same frozen base model from the model store: broadcasting its weights from
        # rank 0 (what DDP does to every parameter and buffer at the start) would move the whole model
        # over the network for nothing. Only the LoRA tensors are DDP's.
        frozen = [f"model.{n}" for n, p in model.named_parameters() if not p.requires_grad]
        frozen += [f"model.{n}" for n, _ in model.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, frozen)
        cuda = self.device.startswith("cuda")
        # No buffer of the model is DDP's either (they are ignored above): nothing to sync before each forward.
        return DistributedDataParallel(module, device_ids=[torch.device(self.device)] if cuda else None)

    def no_sync(self, wrapped: torch.nn.Module) -> ContextManager[Any]:
        """Accumulate this backward's gradients locally: every rank's last backward of a step reduces them."""
        return wrapped.no_sync() if self.world > 1 else contextlib.nullcontext()

    def finish(self) -> "Group":
        """Leave the group; what follows runs on this rank alone."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        return Group(rank=self.rank, world=1, device=self.device)


class _LossOf(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, loss_sum: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, int]]):
        super().__init__()
        self.model, self.loss_sum = model, loss_sum

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, int]:
        return self.loss_sum(self.model, {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask})


def join_group(devices: list[str]) -> Group:
    """This process's rank, from the environment torchrun gives each process it starts (RANK, WORLD_SIZE,
    LOCAL_RANK, and the rendezvous' store): it trains on devices[LOCAL_RANK] of its host."""
    rank, world, local = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if local >= len(devices):
        raise ValueError(f"local rank {local} has no device: this host lists {devices}")
    device = devices[local]
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl", timeout=EXCHANGE_TIMEOUT, device_id=torch.device(device))
    else:
        torch.distributed.init_process_group("gloo", timeout=EXCHANGE_TIMEOUT)
    return Group(rank=rank, world=world, device=device)


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
