"""Finding LoRA adapter directories written by the trainer.

An adapter directory holds ``adapter_model.safetensors``, ``adapter_config.json``, the tokenizer files
(with the ``chat_template.jinja`` used in training) and ``studio_adapter.json`` carrying at least
``{"model": "<adapter id>", "base_model": "<base model name>"}``. Adapter ids are matched as exact strings.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("inference_server")

STUDIO_METADATA = "studio_adapter.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class AdapterSpec:
    adapter_id: str
    path: Path
    base_model: str | None
    source: str  # "static" (--adapter ID=PATH) or "dir" (found under --adapters-dir)
    stamp: tuple | None = None  # (mtime_ns, size) of studio_adapter.json when found; None for static


def read_metadata(adapter_dir: Path) -> dict | None:
    try:
        data = json.loads((adapter_dir / STUDIO_METADATA).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: unreadable %s (%s)", adapter_dir, STUDIO_METADATA, exc)
        return None
    return data if isinstance(data, dict) else None


def metadata_stamp(adapter_dir: Path) -> tuple | None:
    try:
        st = (adapter_dir / STUDIO_METADATA).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def has_weights(adapter_dir: Path) -> bool:
    return (adapter_dir / "adapter_config.json").is_file() and any(
        (adapter_dir / name).is_file() for name in WEIGHT_FILES)


@dataclass
class ScanResult:
    matching: dict[str, AdapterSpec]
    foreign: dict[str, str]  # adapter id -> the other base model it was trained on


def scan_adapters_dir(adapters_dir: Path | None, base_model_name: str) -> ScanResult:
    """Adapters in the immediate subdirectories of ``adapters_dir`` trained on ``base_model_name``."""
    result = ScanResult({}, {})
    if adapters_dir is None or not adapters_dir.is_dir():
        return result
    try:
        children = sorted(p for p in adapters_dir.iterdir() if p.is_dir())
    except OSError as exc:
        log.warning("cannot list adapters dir %s: %s", adapters_dir, exc)
        return result
    for child in children:
        meta = read_metadata(child)
        if not meta:
            continue
        adapter_id = meta.get("model")
        if not isinstance(adapter_id, str) or not adapter_id:
            log.warning("ignoring %s: %s has no \"model\"", child, STUDIO_METADATA)
            continue
        base = meta.get("base_model")
        if base != base_model_name:
            result.foreign[adapter_id] = str(base)
            continue
        if not has_weights(child):
            log.info("skipping %s (%s): no adapter weights yet", child, adapter_id)
            continue
        stamp = metadata_stamp(child)
        spec = AdapterSpec(adapter_id, child.resolve(), base, "dir", stamp)
        previous = result.matching.get(adapter_id)
        if previous is None or (stamp or (0,)) > (previous.stamp or (0,)):  # newest wins on a duplicate id
            result.matching[adapter_id] = spec
    for adapter_id in result.matching:
        result.foreign.pop(adapter_id, None)
    return result


def static_spec(adapter_id: str, path: str | Path, base_model_name: str) -> AdapterSpec:
    """A ``--adapter ID=PATH`` adapter; refused if its metadata names another base model."""
    adapter_dir = Path(path).expanduser().resolve()
    if not has_weights(adapter_dir):
        raise ValueError(f"adapter {adapter_id!r}: {adapter_dir} has no adapter_config.json and adapter weights")
    meta = read_metadata(adapter_dir) or {}
    base = meta.get("base_model")
    if base is not None and base != base_model_name:
        raise ValueError(f"adapter {adapter_id!r} at {adapter_dir} was trained for base model {base!r}, "
                         f"but this server serves {base_model_name!r}")
    return AdapterSpec(adapter_id, adapter_dir, base, "static", None)
