"""The training loss, computed only where it is needed, with two savings over the plain computation.

1. lm_head only on the positions whose next token is labelled. A causal LM's forward pass projects
   every position onto the whole vocabulary (49,152 logits per position for SmolLM2), although a
   completion-only loss needs them only where a completion token is predicted: about 1 position in 5
   of a typical prompt/completion set. The transformer body runs as usual and lm_head is applied to
   those positions alone, which saves its FLOPs (21% of a 135M-parameter model's) everywhere else and
   never materialises the batch x length x vocabulary logits (393 MB in fp32 for 8 rows of 250 tokens),
   their log-softmax or their gradients.
2. On the CPU, a prefix that every row of the batch starts with is run once, not once per row. Chat
   templates put the same tokens in front of every prompt (SmolLM2's default system prompt: 24 tokens),
   and data sets often add a fixed instruction. Those positions' hidden states and keys/values are the
   same in every row, so the prefix goes through the body with batch size 1, its key/value cache is
   repeated for the rows, and the rest of each row attends to it. Gradients flow back through the
   cache, summed over the rows, exactly as if every row had computed it.

The result equals the plain computation (logits of every position, shifted cross-entropy with the
masked labels ignored): the same value and gradients up to float rounding (trainer/tests/test_loss.py).
With LoRA dropout > 0, the shared prefix gets one dropout mask for all rows instead of one per row.
"""
from __future__ import annotations

from typing import Any

import torch

from .prepare import IGNORE_INDEX

# Below this many shared tokens a second pass through the body costs more than it saves.
MIN_SHARED_PREFIX = 8
# Where the body's cost grows with the tokens it runs on. A small model on a GPU is bound by kernel
# launches instead: a second pass through the body doubles them, and on an H200 a SmolLM2-135M step
# took about 2x longer with the prefix shared (fp32 and bf16, batch 8 x 178) and no longer without it.
PREFIX_SHARING_DEVICES = ("cpu",)


def _causal_lm(model: torch.nn.Module) -> Any:
    """The *ForCausalLM inside a PeftModel (LoRA layers are injected in place), or the model itself."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def _body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    lm = _causal_lm(model)
    body = lm.get_decoder() if callable(getattr(lm, "get_decoder", None)) else getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    if body is None or head is None:
        raise TypeError(f"{type(lm).__name__} has no decoder/output embeddings to split the forward pass at")
    return body, head


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading tokens all rows have in common, as real (unmasked) tokens; at least one real token of
    every row is left after it. 0 for a single row."""
    if input_ids.size(0) < 2:
        return 0
    same = ((input_ids == input_ids[:1]) & (attention_mask == 1)).all(dim=0)
    common = int(same.long().cumprod(dim=0).sum())
    return max(0, min(common, int(attention_mask.sum(dim=1).min()) - 1))


def _prefix_sharing_hidden_states(body: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                  prefix: int) -> torch.Tensor | None:
    """Last hidden states of the whole batch, with the first `prefix` tokens computed once; None if this
    model's cache does not allow it (the caller then runs the plain forward)."""
    from transformers import DynamicCache

    rows = input_ids.size(0)
    cache = DynamicCache(config=body.config)
    shared = body(input_ids=input_ids[:1, :prefix], past_key_values=cache, use_cache=True).last_hidden_state
    if cache.get_seq_length() != prefix:  # e.g. gradient checkpointing turned the cache off
        return None
    cache.batch_repeat_interleave(rows)  # differentiable: the rows' gradients add up in the shared prefix
    rest = body(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, past_key_values=cache,
                use_cache=True).last_hidden_state
    return torch.cat([shared.expand(rows, -1, -1), rest], dim=1)


def hidden_states(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The body's last hidden states (batch x length x hidden) for a right- or left-padded batch."""
    body, _ = _body_and_head(model)
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    prefix = shared_prefix_length(input_ids, attention_mask) if input_ids.device.type in PREFIX_SHARING_DEVICES else 0
    # A sliding-window cache would drop keys a plain forward pass attends to.
    if prefix >= MIN_SHARED_PREFIX and not getattr(body.config, "sliding_window", None):
        hidden = _prefix_sharing_hidden_states(body, input_ids, attention_mask, prefix)
        if hidden is not None:
            return hidden
    return body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state


def completion_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled tokens of `batch`, and how many there were.

    `batch` holds input_ids, attention_mask and labels (IGNORE_INDEX where there is no loss), all
    batch x length. Position t predicts labels[t + 1]; only the positions where that label is set go
    through lm_head, and the cross-entropy is taken in fp32 whatever the model's dtype.
    """
    _, head = _body_and_head(model)
    hidden = hidden_states(model, batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = head(hidden[:, :-1][keep])  # (labelled positions) x vocabulary
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())
