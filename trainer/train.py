"""LoRA fine-tuning of a causal LM on (prompt, completion) rows, top to bottom in one function.

    loading -> preparing -> training (+ evaluating after every epoch) -> checking -> saving

The adapter saved is the one from the evaluation with the lowest validation loss. Progress, metrics
and cancellation go through TrainingHooks so the caller (a job worker) decides where they end up.
With a checkpoint_dir, the run's state is saved there every checkpoint_interval_s, and a run started
again on the same model, data and settings carries on from it (see checkpoint.py).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from . import adapter, checkpoint, launch
from .config import TrainConfig, batches_per_step, world_size
from .distributed import Group
from .hooks import StepMetrics, TrainingCancelled, TrainingHooks, TrainResult
from .loss import completion_loss_sum
from .out_of_memory import TrainingOutOfMemory, advice, is_out_of_memory
from .prepare import FALLBACK_CHAT_TEMPLATE, IGNORE_INDEX, Example, Row, epochs_to_train
from .token_store import open_or_write

log = logging.getLogger(__name__)


# -----------------------------------------------------------------------------
# small helpers


def lr_at(step: int, total_steps: int, peak_lr: float, warmup_steps: int) -> float:
    """LR for 0-based `step`: linear warmup to peak, then linear decay towards 0 at total_steps."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    return peak_lr * (total_steps - step) / max(1, total_steps - warmup_steps)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[np.ndarray]:
    """Indices of rows of these lengths, grouped so rows of similar length share a batch (less padding).

    Ties are broken randomly and the batch order is shuffled, so each epoch sees a different order.
    """
    shuffled = list(range(len(lengths)))
    rng.shuffle(shuffled)
    # A stable sort by length, as list.sort would do it (the shuffle breaks ties), without a Python int
    # per row held for the epoch: numpy's, on the store's lengths.
    order = np.asarray(shuffled, dtype=np.int64)
    del shuffled
    order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    starts = list(range(0, len(order), batch_size))
    rng.shuffle(starts)  # the same draws as shuffling the list of batches
    return [order[start : start + batch_size] for start in starts]  # views of one array, not a list per batch


def collate(examples: Sequence[Example], pad_id: int, device: str, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row of this batch only (rounded up to `multiple`); padding is masked out
    of attention and loss."""
    width = -(-max(len(e.input_ids) for e in examples) // multiple) * multiple
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention_mask[row, :n] = 1
    return {k: v.to(device) for k, v in dict(input_ids=input_ids, labels=labels, attention_mask=attention_mask).items()}


def labelled_tokens(batch: dict[str, torch.Tensor]) -> int:
    """The tokens of a batch that have a loss: what completion_loss_sum counts (position t predicts t + 1)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over the labelled tokens, and how many there were.

    Sums (not means) so epoch losses are weighted by tokens, whatever the batch composition.
    """
    return completion_loss_sum(model, batch)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No 'Loading weights' progress bars on stderr: everything we report goes through logging/hooks."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# -----------------------------------------------------------------------------
# the run


@dataclass
class _Where:
    """How far a run got: what an out-of-memory message needs to say."""

    phase: str = "starting"
    longest_row_tokens: int = 0


def train(
    config: TrainConfig,
    train_rows: Sequence[Row],
    val_rows: Sequence[Row],
    hooks: TrainingHooks | None = None,
) -> TrainResult:
    """Fine-tune a LoRA adapter and write it to config.output_dir (see module docstring).

    The rows are expected to have passed prepare.check_rows already. Token-limit errors from here
    (DataError) number rows across train_rows followed by val_rows. Running out of memory raises
    TrainingOutOfMemory, whose message says what to change.
    """
    hooks = hooks or TrainingHooks()
    if world_size(config) > 1:  # data parallel: torchrun starts the ranks, this process relays rank 0's reports
        return launch.train_distributed(config, train_rows, val_rows, hooks)
    result = run_rank(config, train_rows, val_rows, hooks, Group(device=config.device))
    assert result is not None
    return result


def run_rank(config: TrainConfig, train_rows: Sequence[Row], val_rows: Sequence[Row], hooks: TrainingHooks,
             group: Group) -> TrainResult | None:
    """The run on one rank (rank.py starts those of a distributed run); None on ranks other than 0, whose
    hooks are never called."""
    where = _Where()
    try:
        return _run(config, train_rows, val_rows, hooks, where, group)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if group.device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise TrainingOutOfMemory(advice(group.device, config.batch_size, where.longest_row_tokens, where.phase)) from exc


def _run(config: TrainConfig, train_rows: Sequence[Row], val_rows: Sequence[Row], hooks: TrainingHooks,
         where: _Where, group: Group) -> TrainResult | None:
    """The run on one rank; None on ranks other than 0. With a single device, group is the trivial one."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = group.device

    def enter(phase: str) -> None:
        where.phase = phase
        hooks.on_phase(phase)

    def check_cancel() -> None:
        """Rank 0 asks the hooks and every rank stops at the same point."""
        if group.agree(group.leader and hooks.should_cancel()):
            raise TrainingCancelled("Training was cancelled.")

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if device == "cpu":
        # torch defaults to the machine's core count, not the cores this process is allowed to use.
        torch.set_num_threads(config.num_threads or max(1, len(os.sched_getaffinity(0))))

    # --- loading ---
    check_cancel()
    enter("loading")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(config.base_model_path)
        model = AutoModelForCausalLM.from_pretrained(config.base_model_path, dtype=dtype, use_cache=False)
    model.to(device)
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
    )
    model = get_peft_model(model, lora)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        pad_id = 0  # any id works: padded positions are masked out of attention and loss

    # --- preparing ---
    check_cancel()
    enter("preparing")
    # The caller's token store (a job's, mapped read-only on every rank), or the rows given encoded into a
    # temporary one whose directory, `scratch`, lives as long as this run.
    store, scratch = open_or_write(config.token_store, tokenizer, train_rows, val_rows, config.max_prompt_tokens,
                                   config.max_completion_tokens)
    train_examples, val_examples = store.train, store.validation
    template = store.template
    where.longest_row_tokens = store.longest_row
    epochs = epochs_to_train(config.max_epochs, len(train_examples))
    per_step = batches_per_step(config)
    steps_per_epoch = math.ceil(math.ceil(len(train_examples) / config.batch_size) / per_step)
    total_steps = steps_per_epoch * epochs
    warmup_steps = math.ceil(total_steps * config.warmup_ratio)
    tokens_per_epoch = train_examples.tokens
    log.info(
        "training %d rows (%d validation) for %d epochs, %d steps, template=%s",
        len(train_examples), len(val_examples), epochs, total_steps, template,
    )

    # On a GPU every new batch shape costs kernel selection (cuBLAS, attention) again; a few widths
    # instead of one per batch. On a CPU the extra padding would be pure cost.
    pad_multiple = config.pad_to_multiple_of or (64 if device.startswith("cuda") else 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    step_model = group.wrap(model, lambda m, batch: loss_sum(m, batch))  # looked up per call: tests replace loss_sum

    def evaluate() -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():  # each rank takes every world-th batch
            for i in range(group.rank * config.batch_size, len(val_examples), group.world * config.batch_size):
                batch = collate(val_examples[i : i + config.batch_size], pad_id, device, pad_multiple)
                loss, n = loss_sum(model, batch)
                total, count = total + loss.item(), count + n
        model.train()
        total, count = group.sum(total, count)
        return total / max(1, count)

    # --- training ---
    history: list[dict[str, Any]] = []
    val_history: list[dict[str, Any]] = []
    best_loss, best_step, best_state = math.inf, None, None
    epoch_loss = math.nan
    epoch_total, epoch_count = 0.0, 0
    step = 0
    resumed_from = None
    identity = (checkpoint.fingerprint(config, store.train_hash, store.validation_hash, epochs)
                if config.checkpoint_dir else "")
    saved = checkpoint.load(config.checkpoint_dir, identity) if config.checkpoint_dir else None
    if saved is not None:
        set_peft_model_state_dict(model, saved["lora"])
        optimizer.load_state_dict(saved["optimizer"])  # moves the moments onto the parameters' device
        step = resumed_from = saved["step"]
        history, val_history = saved["history"], saved["val_history"]
        best_loss, best_step, best_state = saved["best_loss"], saved["best_step"], saved["best_state"]
        epoch_total, epoch_count = saved["epoch_total"], saved["epoch_count"]
        torch.set_rng_state(saved["torch_rng"])
        hooks.on_resume(step)
        log.info("carrying on from the checkpoint at step %d of %d", step, total_steps)
    last_checkpoint = time.monotonic()

    def save_checkpoint_if_due() -> None:
        """Only called where the state is whole: after a step and any evaluation belonging to it."""
        nonlocal last_checkpoint
        if not config.checkpoint_dir:
            return
        if not group.agree(time.monotonic() - last_checkpoint >= config.checkpoint_interval_s):
            return
        check_cancel()  # a run that is no longer wanted must not overwrite what another may resume from
        last_checkpoint = time.monotonic()
        if not group.leader:  # every rank holds the same state; one writes it
            return
        checkpoint.save(config.checkpoint_dir, {
            "fingerprint": identity, "step": step, "total_steps": total_steps,
            "lora": {k: v.detach().cpu() for k, v in get_peft_model_state_dict(model).items()},
            "optimizer": optimizer.state_dict(), "history": history, "val_history": val_history,
            "best_loss": best_loss, "best_step": best_step,
            "best_state": None if best_state is None else {k: v.cpu() for k, v in best_state.items()},
            "epoch_total": epoch_total, "epoch_count": epoch_count, "torch_rng": torch.get_rng_state(),
            "batches_per_step": per_step,
        })
        last_checkpoint = time.monotonic()

    def validate(epoch_reached: float) -> float:
        """Evaluate, record, and keep a copy of the adapter if it is the best so far."""
        nonlocal best_loss, best_step, best_state
        check_cancel()
        enter("evaluating")
        val_loss = evaluate()
        val_history.append({"epoch": round(epoch_reached, 4), "step": step, "validation_loss": val_loss})
        hooks.on_eval(epoch_reached, val_loss, step)
        if val_loss < best_loss:
            # Only the LoRA tensors: a few MB at most, cheap to keep a copy of.
            best_loss, best_step = val_loss, step
            best_state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        return val_loss

    model.train()
    run_started, steps_before = time.perf_counter(), step
    for epoch in range(step // steps_per_epoch + 1, epochs + 1):
        check_cancel()
        enter("training")
        # Each epoch's order depends on the seed and the epoch alone, so a resumed run replays it exactly
        # (and every rank walks the same one).
        batches = length_grouped_batches(train_examples.lengths, config.batch_size,
                                         random.Random(config.seed * 100_003 + epoch))
        steps = [batches[i : i + per_step] for i in range(0, len(batches), per_step)]
        done_in_epoch = step - (epoch - 1) * steps_per_epoch
        if done_in_epoch == 0:
            epoch_total, epoch_count = 0.0, 0
        for step_batches in steps[done_in_epoch:]:
            check_cancel()
            started = time.perf_counter()
            lr = lr_at(step, total_steps, config.learning_rate, warmup_steps)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            # This rank's share of the step's batches: every world-th, from its rank on.
            mine = [collate([train_examples[i] for i in b], pad_id, device, pad_multiple)
                    for b in step_batches[group.rank :: group.world]]
            (n_total,) = group.sum(sum(labelled_tokens(batch) for batch in mine))
            # DDP averages the ranks' gradients: scaled so the average is the mean over the step's labelled
            # tokens. A rank without a batch (the last step of an epoch may have fewer than ranks) still
            # takes part in the reduction, with a zero loss.
            scale = group.world / max(1, n_total)
            passes = mine or [collate([train_examples[i] for i in step_batches[0]], pad_id, device, pad_multiple)]
            loss_value, real_tokens = 0.0, 0
            for i, batch in enumerate(passes):
                with group.no_sync(step_model) if i < len(passes) - 1 else contextlib.nullcontext():
                    loss, _ = step_model(**batch)
                    (loss * (scale if mine else 0.0)).backward()
                if mine:
                    loss_value, real_tokens = loss_value + loss.item(), real_tokens + int(batch["attention_mask"].sum())
            loss_total, tokens_total = group.sum(loss_value, real_tokens)
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_total, epoch_count = epoch_total + loss_total, epoch_count + n_total
            now = time.perf_counter()
            metrics = StepMetrics(
                step=step,
                total_steps=total_steps,
                epoch=step / steps_per_epoch,
                loss=loss_total / max(1, n_total),
                learning_rate=lr,
                tokens_per_second=tokens_total / max(now - started, 1e-9),
                progress=step / total_steps,
                eta_seconds=(now - run_started) / (step - steps_before) * (total_steps - step),
            )
            history.append(asdict(metrics))
            hooks.on_step(metrics)
            if step % steps_per_epoch:  # epoch ends are evaluated and checkpointed below
                if val_examples and config.eval_steps and step % config.eval_steps == 0:
                    validate(step / steps_per_epoch)
                    enter("training")
                save_checkpoint_if_due()
        epoch_loss = epoch_total / max(1, epoch_count)

        if val_examples:
            val_loss = validate(epoch)
            log.info("epoch %d: training loss %.4f, validation loss %.4f", epoch, epoch_loss, val_loss)
        else:
            log.info("epoch %d: training loss %.4f", epoch, epoch_loss)
        if epoch < epochs:
            save_checkpoint_if_due()

    if best_state is not None and best_step != step:
        set_peft_model_state_dict(model, best_state)
    del step_model  # DDP's hooks on the LoRA tensors go with it: generation and saving run on this rank alone
    group = group.finish()  # what follows (check, save) is rank 0's alone
    if not group.leader:
        return None
    best_epoch = best_step / steps_per_epoch if best_step is not None else float(epochs)

    # --- checking ---
    adapter_check = None
    if config.adapter_check_prompts > 0:
        check_cancel()
        enter("checking")
        sample = store.sample_prompts(config.adapter_check_prompts)
        adapter_check = adapter.check(model, tokenizer, sample, None if template == "model" else FALLBACK_CHAT_TEMPLATE,
                                      config.adapter_check_tokens, device)
        log.info("adapter check: %d of %d answers differ from the base model's",
                 adapter_check["differing"], adapter_check["prompts"])

    result = TrainResult(
        training_loss=epoch_loss,
        validation_loss=best_loss if val_examples else None,
        epochs=epochs,
        best_epoch=best_epoch,
        trained_tokens=tokens_per_epoch * epochs,
        steps=step,
        template=template,
        history=history,
        val_history=val_history,
        adapter_check=adapter_check,
        resumed_from_step=resumed_from,
    )

    # --- saving ---
    check_cancel()
    enter("saving")
    out = adapter.save(config, model, tokenizer, template,
                       adapter.metadata(config, store, result), check_cancel)
    if config.checkpoint_dir:
        shutil.rmtree(config.checkpoint_dir, ignore_errors=True)  # the run is complete: nothing to carry on from
    log.info("saved adapter to %s", out)
    return result
