"""Running out of memory while training, told as something the user can act on.

torch reports it four ways: torch.OutOfMemoryError on CUDA, MemoryError from Python allocations, and
a plain RuntimeError from the CPU allocator ("DefaultCPUAllocator: can't allocate memory") or from
kernels that allocate on their own. Memory grows with the tokens of one step: rows per step times the
longest row of the step, so those are the two knobs a message can point at.
"""
from __future__ import annotations

_CPU_ALLOCATOR_MESSAGES = ("can't allocate memory", "out of memory", "not enough memory")


class TrainingOutOfMemory(Exception):
    """str(error) is a complete message for the job's error field."""


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _CPU_ALLOCATOR_MESSAGES)


def advice(device: str, batch_size: int, longest_row_tokens: int, phase: str) -> str:
    where = "the GPU" if device.startswith("cuda") else "the worker's machine"
    smaller = max(1, batch_size // 2)
    return (
        f"Training ran out of memory on {where} ({device}) while {phase}: a step of {batch_size} rows, the "
        f"longest {longest_row_tokens} tokens. Memory grows with rows per step times row length. Try "
        f"'{{\"batch_size\": {smaller}}}' in the options, shorter prompts or completions, or a warehouse "
        "with more memory."
    )
