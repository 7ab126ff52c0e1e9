"""What TGI can serve: which adapters it loads, and which it would refuse or silently ignore in part."""

from __future__ import annotations

import contextlib
import json
import re
import struct
from pathlib import Path
from typing import Any

from django.conf import settings

from errors import UserError


# Modules TGI applies LoRA to, per architecture (config.json model_type). Read from
# server/text_generation_server/models/custom_modeling/flash_*_modeling.py: a module counts only where its
# layer is a TensorParallel*AdapterLinear whose layer name is the bare module name. Qwen2 and Starcoder2
# pass full prefixes ("model.layers.0.self_attn.q_proj") for q/k/v, gate/up and c_fc, so TGI never finds
# their adapter weights; mixtral, gemma (1), phi, falcon and the rest have no adapter layers at all.
_PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
SUPPORTED_MODULES: dict[str, frozenset[str]] = {
    "llama": _PROJECTIONS,
    "granite": _PROJECTIONS,
    "mistral": _PROJECTIONS,
    "gemma2": _PROJECTIONS,
    "gemma3_text": _PROJECTIONS,
    "phi3": frozenset({"qkv_proj", "o_proj", "down_proj"}),
    "qwen2": frozenset({"o_proj", "down_proj"}),
    "starcoder2": frozenset({"o_proj", "c_proj", "down_proj"}),
}
# Padded ranks the punica BGMV decode kernel is built for (bgmv_config.h: FOR_BGMV_WIDE_NARROW).
KERNEL_RANKS = (8, 16, 32, 64, 128)
# TGI skips weight files whose names contain these (utils/hub.py _weight_files_from_dir).
_SKIPPED_WEIGHT_NAMES = ("arguments", "args", "training")
# PEFT's key for a LoRA matrix, and the decoder-layer prefix TGI looks it up under (utils/adapter.py).
_LORA_KEY = re.compile(r"base_model\.model\.(?:(.+)\.)?(\w+)\.lora_([AB])\.weight")
_LAYER_PREFIX = re.compile(r"model\.layers\.(\d+)\.(?:self_attn|mlp)")

class NotServable(UserError):
    """An adapter TGI would refuse, or load and then silently ignore in part or in whole."""



# -- what TGI can serve ----------------------------------------------------------------------------------------

def _read_json(path: Path, what: str, name: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotServable(f"Adapter {name}: {path} is missing; TGI needs {what}. Retrain the model or restore "
                          f"the adapter directory.") from None
    except (OSError, ValueError) as exc:
        raise NotServable(f"Adapter {name}: cannot read {path} ({exc}). Retrain the model or restore the "
                          f"adapter directory.") from None
    if not isinstance(data, dict):
        raise NotServable(f"Adapter {name}: {path} is not a JSON object. Retrain the model.")
    return data


def _safetensors_header(path: Path) -> dict[str, Any]:
    """Tensor names and shapes from a safetensors file, without loading the weights."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > 100 * 1024 * 1024:
            raise ValueError("header too large")
        header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def chat_template(directory: Path) -> str | None:
    """The chat template transformers would use for a checkpoint or adapter directory."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        with contextlib.suppress(OSError, ValueError):
            template = json.loads((directory / name).read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return template
    return None


def _base_dir(base_model: str | None, adapter_config: dict) -> Path | None:
    if base_model:
        store_dir = Path(settings.MODEL_STORE) / "base" / base_model
        if (store_dir / "config.json").is_file():
            return store_dir
    recorded = adapter_config.get("base_model_name_or_path")
    if isinstance(recorded, str) and recorded and (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    return None


def _ranks_hint() -> str:
    return "Retrain it with a LoRA rank of 8, 16, 32, 64 or 128 (the studio's default is 16)."


def _padded_rank(r: int) -> int:
    # punica_sgmv.pad_rank for one shard (NUM_SHARD=1 in docker/compose.yaml)
    return 8 if r <= 8 else (r + 15) // 16 * 16


def check_servable(adapter_dir: str | Path, *, name: str | None = None, server_base_model: str | None = None,
                   base_model_dir: str | Path | None = None) -> None:
    """Raise NotServable, naming the adapter, the problem and the fix, for an adapter TGI would refuse or
    load wrongly. ``server_base_model`` is the catalog name of the base model the TGI server runs;
    ``base_model_dir`` its checkpoint (default: MODEL_STORE/base/<base model>, else the path recorded
    in adapter_config.json)."""
    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / "studio_adapter.json"
    meta = _read_json(meta_path, "the studio's metadata", name or str(adapter_dir)) if meta_path.exists() else {}
    name = name or meta.get("model") or str(adapter_dir)
    base_model = meta.get("base_model")

    if server_base_model is not None and base_model is not None and base_model != server_base_model:
        raise NotServable(f"Adapter {name} was trained on base model '{base_model}', but this TGI server runs "
                          f"'{server_base_model}'. Deploy it to a server for '{base_model}'.")

    config = _read_json(adapter_dir / "adapter_config.json", "adapter_config.json (a PEFT LoRA config)", name)
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise NotServable(f"Adapter {name} is a PEFT {peft_type or 'unknown'} adapter; TGI serves LoRA adapters "
                          f"only. Retrain it as LoRA.")
    if config.get("use_dora"):
        raise NotServable(f"Adapter {name} uses DoRA: TGI loads only its LoRA A/B matrices and ignores the DoRA "
                          f"magnitudes, so it would answer as a different model. Retrain it without DoRA "
                          f"(use_dora=False).")
    if config.get("modules_to_save"):
        raise NotServable(f"Adapter {name} saves full copies of {', '.join(config['modules_to_save'])} "
                          f"(modules_to_save), which TGI ignores. Retrain it without modules_to_save.")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        raise NotServable(f"Adapter {name} trains biases, which TGI ignores. Retrain it with bias='none'.")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise NotServable(f"Adapter {name} uses per-module ranks or alphas (rank_pattern/alpha_pattern); TGI "
                          f"scales every module by one lora_alpha / r. Retrain it with a single r and lora_alpha.")

    weight_files = sorted(p for p in adapter_dir.glob("*.safetensors")
                          if not any(s in p.name for s in _SKIPPED_WEIGHT_NAMES))
    if not weight_files:
        found = [p.name for p in adapter_dir.glob("adapter_model.*")]
        what = f"its weights are {', '.join(found)}" if found else "it has no adapter weights"
        raise NotServable(f"Adapter {name}: {what}, and TGI loads only *.safetensors from a local adapter path. "
                          f"Save it with safe_serialization=True, e.g. PeftModel.from_pretrained(base, dir)"
                          f".save_pretrained(dir), or retrain it.")

    base_dir = Path(base_model_dir) if base_model_dir else _base_dir(base_model, config)
    if base_dir is None:
        raise NotServable(f"Adapter {name}: cannot find the config.json of its base model "
                          f"'{base_model or config.get('base_model_name_or_path')}' to check it against TGI; "
                          f"install the base model in the model store first.")
    base_config = _read_json(base_dir / "config.json", "the base model's config.json", name)
    model_type = base_config.get("model_type")
    supported = SUPPORTED_MODULES.get(model_type)
    if supported is None:
        raise NotServable(f"Adapter {name}: TGI has no LoRA support for '{model_type}' models, the architecture "
                          f"of its base model. Serve it with the embedded backend.")
    layers = base_config.get("num_hidden_layers")

    shapes: dict[str, list[int]] = {}
    for path in weight_files:
        try:
            header = _safetensors_header(path)
        except (OSError, ValueError, struct.error) as exc:
            raise NotServable(f"Adapter {name}: {path.name} is not a readable safetensors file ({exc}). "
                              f"Retrain the model or restore the adapter directory.") from None
        shapes.update({key: value.get("shape", []) for key, value in header.items() if isinstance(value, dict)})

    ignored, unsupported, layers_of, ranks = [], set(), {}, set()
    for key, shape in shapes.items():
        match = _LORA_KEY.fullmatch(key)
        if not match:
            ignored.append(key)
            continue
        prefix, module, side = match.groups()
        if module not in supported:
            unsupported.add(module)
            continue
        layer = _LAYER_PREFIX.fullmatch(prefix or "")
        if not layer:
            ignored.append(key)
            continue
        layers_of.setdefault((module, side), set()).add(int(layer[1]))
        if side == "A" and len(shape) == 2:
            ranks.add(shape[0])
    if unsupported:
        raise NotServable(f"Adapter {name} adapts {', '.join(repr(m) for m in sorted(unsupported))}, which TGI does "
                          f"not apply LoRA to on '{model_type}' models (it does to {', '.join(sorted(supported))}) "
                          f"and would silently ignore. Retrain it with target_modules among those.")
    if ignored:
        shown = ", ".join(sorted(ignored)[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
        raise NotServable(f"Adapter {name} holds weights TGI would ignore ({shown}): TGI loads only the LoRA A/B "
                          f"matrices of {', '.join(sorted(supported))} in the decoder layers. Retrain it as a "
                          f"plain LoRA on those modules.")
    if not layers_of:
        raise NotServable(f"Adapter {name} has no LoRA weights. Retrain the model.")

    expected = set(range(layers)) if isinstance(layers, int) else set().union(*layers_of.values())
    for module in sorted({m for m, _ in layers_of}):
        for side in ("A", "B"):
            present = layers_of.get((module, side), set())
            if present != expected:
                missing = sorted(expected - present)
                raise NotServable(f"Adapter {name} adapts '{module}' in only some layers (lora_{side} missing in "
                                  f"layers {', '.join(map(str, missing[:8]))}{'…' if len(missing) > 8 else ''}); "
                                  f"TGI then drops '{module}' in every layer. Retrain it on all layers "
                                  f"(no layers_to_transform).")

    r = config.get("r")
    if not isinstance(r, int) or isinstance(r, bool):
        raise NotServable(f"Adapter {name}: adapter_config.json has no integer rank r ({r!r}). Retrain the model.")
    if ranks != {r}:
        raise NotServable(f"Adapter {name}: its weights have rank {', '.join(map(str, sorted(ranks)))} but its "
                          f"config says r={r}; TGI scales by the config's r. Retrain the model.")
    if r > KERNEL_RANKS[-1]:
        raise NotServable(f"Adapter {name} has LoRA rank {r}, above 128, the largest rank TGI's LoRA kernels "
                          f"handle (it would fall back to an unbatched loop). {_ranks_hint()}")
    if _padded_rank(r) not in KERNEL_RANKS:
        raise NotServable(f"Adapter {name} has LoRA rank {r}, which TGI pads to {_padded_rank(r)}, a rank its "
                          f"decode kernel (punica BGMV: 8, 16, 32, 64, 128) has no build for, so generation "
                          f"would fail. {_ranks_hint()}")

    adapter_template = chat_template(adapter_dir)
    base_template = chat_template(base_dir)
    if adapter_template is not None and base_template is not None and adapter_template != base_template:
        raise NotServable(f"Adapter {name} was trained with its own chat template, but TGI renders chat requests "
                          f"with the base model's, so its prompts would not match training. Retrain it with the "
                          f"base model's chat template, or serve it with the embedded backend.")
