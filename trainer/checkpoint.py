"""The state of a training run on disk, so a run killed mid-way carries on where it was.

A checkpoint holds only what changes during a run: the LoRA tensors, the optimizer's moments, where
in the schedule the run was, the metrics so far and the best adapter yet. The base model, the data
and the hyperparameters are the caller's to supply again; a fingerprint of them is stored, and a
checkpoint written for anything else is ignored rather than resumed into a different run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from .config import TrainConfig, batches_per_step, fingerprinted
from .fingerprint import base_model_hash, data_hash

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
SUMMARY_FILE = "checkpoint.json"  # the step reached, readable without torch (the web side and the worker's sweep)
FORMAT_VERSION = 1


def fingerprint(config: TrainConfig, train_rows: Sequence[tuple[str, str]] | str,
                val_rows: Sequence[tuple[str, str]] | str, epochs: int) -> str:
    """What must be the same for a checkpoint to continue this run: model, data, schedule, LoRA shape. The rows
    may be given as their data_hash already (a token store's train_hash and validation_hash)."""
    identity = {
        "version": FORMAT_VERSION,
        "base_model": base_model_hash(config.base_model_path),
        "train": train_rows if isinstance(train_rows, str) else data_hash(train_rows),
        "validation": val_rows if isinstance(val_rows, str) else data_hash(val_rows),
        "epochs": epochs,
        "schedule": fingerprinted(config, "schedule"),
        "lora": fingerprinted(config, "lora"),
        # Batches per optimizer step (named for when a step was one batch per rank): not the ranks themselves,
        # so a run carries on from its checkpoint on another number of ranks.
        "ranks": batches_per_step(config),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def save(directory: str | Path, state: dict[str, Any]) -> None:
    """Write atomically: a kill during the write leaves the previous checkpoint intact."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{STATE_FILE}.partial"
    torch.save({"format": FORMAT_VERSION, **state}, partial)
    os.replace(partial, directory / STATE_FILE)
    summary = directory / f"{SUMMARY_FILE}.partial"
    summary.write_text(json.dumps({"step": state["step"], "total_steps": state.get("total_steps"),
                                   "batches_per_step": state.get("batches_per_step", 1)}))
    os.replace(summary, directory / SUMMARY_FILE)


def load(directory: str | Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state if there is one for this very run, else None."""
    import torch

    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        # Our own file; weights_only keeps a tampered one from running code on load.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: train from the start rather than fail the job
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("ignoring checkpoint %s: it was written for other data, model or settings", path)
        return None
    return state


def saved_batches_per_step(directory: str | Path) -> int | None:
    """The batches per step of the run a checkpoint in `directory` belongs to: a job carrying on from it on
    another number of ranks keeps its steps."""
    try:
        return int(json.loads((Path(directory) / SUMMARY_FILE).read_text())["batches_per_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def saved_step(directory: str | Path) -> int | None:
    """The optimizer step a checkpoint in `directory` reached, without checking whose it is."""
    try:
        return int(json.loads((Path(directory) / SUMMARY_FILE).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
