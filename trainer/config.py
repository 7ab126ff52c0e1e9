"""Everything one training run needs to know, in one flat dataclass."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The seven linear projections of a Llama block: LoRA on all of them learns far more per step than
# attention-only LoRA, at an adapter size that is still small.
LLAMA_PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# FINETUNE's options ('{"max_epochs": 3}'), with the JSON types each takes: each sets the TrainConfig field
# of its name.
FINETUNE_OPTIONS: dict[str, type | tuple[type, ...]] = {"max_epochs": int, "learning_rate": (int, float),
                                                        "eval_steps": int, "batch_size": int}


@dataclass
class TrainConfig:
    base_model_path: str  # directory with config.json, *.safetensors and the tokenizer of the base model
    output_dir: str  # staging directory: cleared, filled with the adapter, then moved away by the caller

    # --- schedule ---
    max_epochs: int | None = None  # None = auto: see prepare.epochs_to_train
    learning_rate: float = 2e-4  # peak LR for AdamW; LoRA tolerates ~10x the full fine-tuning LR
    batch_size: int = 8  # rows per batch
    batches_per_step: int | None = None  # batches per optimizer step, dealt out to the ranks; None: one per rank
    warmup_ratio: float = 0.1  # fraction of all steps spent ramping the LR up linearly before the linear decay
    weight_decay: float = 0.0  # LoRA matrices are tiny and start at zero; decay only fights memorisation
    max_grad_norm: float = 1.0  # clip so one badly-formatted long row cannot blow up the adapter

    # --- LoRA ---
    lora_r: int = 16  # rank of the update matrices
    lora_alpha: int = 32  # update is scaled by alpha / r = 2
    lora_dropout: float = 0.0  # small data sets are meant to be memorised; dropout slows that down
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))  # modules that get adapters

    # --- data limits (None = unlimited) ---
    max_prompt_tokens: int | None = None  # rendered prompt (template + system prompt + user turn) token limit per row
    max_completion_tokens: int | None = None  # completion token limit per row, end-of-turn token included
    max_training_bytes: int | None = None  # UTF-8 bytes of all prompts + completions together
    eval_steps: int | None = None  # also evaluate every N optimizer steps; None: only at the end of each epoch
    validation_fraction: float = 0.1  # share of rows held out when no validation set is given (1..1000 rows)
    token_store: str | None = None  # a finished token store (token_store.py) to train from, mapped read-only by every
    # rank (train()'s rows are then ignored); None: train()'s rows are encoded into a temporary one

    # --- after training ---
    adapter_check_prompts: int = 3  # validation prompts answered with and without the adapter; 0 skips the check
    adapter_check_tokens: int = 24  # greedy tokens generated per answer in that check

    # --- checkpoints ---
    checkpoint_dir: str | None = None  # the run's state is saved here while training, and resumed from; None: never
    checkpoint_interval_s: float = 60.0  # save at most this often (0: after every step); a save costs well under 1 s

    # --- runtime ---
    seed: int = 0  # seeds the split, batch order and torch, so a rerun gives the same adapter
    device: str = "cpu"  # "cpu" trains in fp32, "cuda" loads the base model in bf16
    devices: list[str] | None = None  # several: data parallel, one process per device (distributed.py)
    nodes: int = 1  # hosts the run spans, each with `devices`; the others join through hooks.on_launch (launch.py)
    host: str = "127.0.0.1"  # this host's address as the other hosts reach it: rendezvous and report channel
    rendezvous_port: int | None = None  # the c10d rendezvous' port on `host`; None: a free one
    join_timeout_s: float = 600.0  # how long a run over several hosts waits for all of them to join
    pad_to_multiple_of: int | None = None  # batch widths rounded up to this; None: 64 on CUDA, 1 on the CPU
    num_threads: int | None = None  # torch CPU threads; None = every core this process may run on

    metadata: dict[str, Any] = field(default_factory=dict)  # copied into studio_adapter.json (job id, names, ...)


# The hyperparameters, the settings that decide what a run learns, each with the group the checkpoint
# fingerprint hashes it in (a checkpoint carries on only a run where every one is the same), or None for
# the row limits, which are checked against each row and change no step. Their order within a group is
# part of every fingerprint on disk: reordering them orphans every checkpoint.
HYPERPARAMETERS: dict[str, str | None] = {
    "learning_rate": "schedule", "batch_size": "schedule", "warmup_ratio": "schedule", "weight_decay": "schedule",
    "max_grad_norm": "schedule",
    "lora_r": "lora", "lora_alpha": "lora", "lora_dropout": "lora", "target_modules": "lora",
    "max_prompt_tokens": None, "max_completion_tokens": None,
    "eval_steps": "schedule", "seed": "schedule",
}
UNRECORDED = {"max_grad_norm"}  # studio_adapter.json records every other one; it never recorded this


def world_size(config: TrainConfig) -> int:
    """The ranks of a run: its devices on each of its hosts."""
    return len(config.devices or [config.device]) * config.nodes


def batches_per_step(config: TrainConfig) -> int:
    """Batches of one optimizer step. Fixed when the run starts, so that a run carried on from a checkpoint
    on fewer or more ranks takes the same steps (the batches are dealt out to however many there are)."""
    return config.batches_per_step or world_size(config)


def hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The hyperparameters studio_adapter.json records, by name."""
    return {name: _copy(getattr(config, name)) for name in HYPERPARAMETERS if name not in UNRECORDED}


def fingerprinted(config: TrainConfig, group: str) -> list[Any]:
    """The values of one fingerprint group, in order. A list (target_modules) is sorted: it names a set of
    modules, and naming them in another order is the same run."""
    values = [getattr(config, name) for name, grouped in HYPERPARAMETERS.items() if grouped == group]
    return [sorted(value) if isinstance(value, (list, tuple)) else value for value in values]


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
