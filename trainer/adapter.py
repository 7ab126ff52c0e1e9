"""What a run leaves behind: the adapter check (does the adapter answer differently from the base model?)
and the adapter directory (weights, tokenizer and chat template, and studio_adapter.json last).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from .config import TrainConfig, batches_per_step, hyperparameters
from .fingerprint import base_model_hash
from .prepare import FALLBACK_CHAT_TEMPLATE

if TYPE_CHECKING:
    from .token_store import TokenStore
    from .hooks import TrainResult

ADAPTER_METADATA_FILE = "studio_adapter.json"


@torch.no_grad()
def check(model: Any, tokenizer: Any, prompts: Sequence[str], template: str | None, max_new_tokens: int,
          device: str) -> dict[str, Any]:
    """Answer each prompt greedily with the adapter and with it disabled (the base model).

    An adapter whose answers never differ from the base model's has learnt nothing visible: worth
    saying on the job, since its loss curve may still look fine.
    """
    model.eval()
    examples = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], chat_template=template,
                                             tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)

        def answer() -> str:
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, use_cache=True, pad_token_id=tokenizer.pad_token_id
                                 if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
            return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

        tuned = answer()
        with model.disable_adapter():
            base = answer()
        examples.append({"prompt": prompt, "adapter": tuned, "base": base})
    differing = sum(e["adapter"] != e["base"] for e in examples)
    return {"prompts": len(examples), "differing": differing, "live": differing > 0, "examples": examples}


def metadata(config: TrainConfig, data: TokenStore, result: TrainResult) -> dict[str, Any]:
    """studio_adapter.json: the caller's metadata, what the adapter was trained from and how, and its metrics."""
    return {
        **config.metadata,
        "base_model_hash": base_model_hash(config.base_model_path),
        "data_hash": data.data_hash,
        "hyperparameters": {
            "epochs": result.epochs,
            **hyperparameters(config),
            "devices": list(config.devices or [config.device]),
            "nodes": config.nodes,
            "batches_per_step": batches_per_step(config),
            "training_rows": len(data.train),
            "validation_rows": len(data.validation),
        },
        "metrics": {
            "training_loss": result.training_loss,
            "validation_loss": result.validation_loss,
            "trained_tokens": result.trained_tokens,
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
        },
        "chat_template": result.template,
        "adapter_check": result.adapter_check,
    }


def save(config: TrainConfig, model: Any, tokenizer: Any, template: str, metadata: dict[str, Any],
         check_cancel: Callable[[], None]) -> Path:
    """Write the adapter directory, config.output_dir, whole or not at all: a failure or a cancel while
    writing removes it."""
    out = Path(config.output_dir)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        model.save_pretrained(str(out), safe_serialization=True)
        if template == "fallback":
            tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE  # serving must format prompts as training did
        tokenizer.save_pretrained(str(out))
        # Written last: its presence marks a complete adapter directory.
        (out / ADAPTER_METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False))
        check_cancel()  # cancelled while saving: the adapter is whole, but nobody wants it
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written adapter behind
        raise
    return out
