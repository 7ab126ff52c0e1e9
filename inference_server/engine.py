"""The model side: one base model, PEFT LoRA adapters selected per request, token-by-token decoding.

Requests decode together in one continuously batched loop (``batching.py``), whatever adapter each asks for;
forward passes and adapter loads run under one lock, so an adapter loads between two decode steps. Callers run
:meth:`Engine.generate` in a worker thread so the HTTP event loop stays responsive.
"""
from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference_server.adapters import AdapterSpec, metadata_stamp, scan_adapters_dir, static_spec
from inference_server.batching import Scheduler
from inference_server.errors import AdapterLoadError, AdapterNotFound, TemplateError
from inference_server.generation import GenResult, OnToken, SamplingParams, Target

log = logging.getLogger("inference_server")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def _as_id_set(*values) -> set[int]:
    ids: set[int] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, int):
            ids.add(value)
        else:
            ids.update(int(v) for v in value)
    return ids


def _has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in TOKENIZER_FILES)


class Engine:
    def __init__(self, base_model_dir: str | Path, base_model_name: str, adapters_dir: str | Path | None = None,
                 static_adapters: dict[str, str | Path] | None = None, *, device: str = "cpu",
                 dtype: str = "float32", max_input_tokens: int | None = None,
                 max_total_tokens: int | None = None, max_batch_size: int = 16,
                 decode_threads: int | None = None) -> None:
        self.base_model_dir = Path(base_model_dir)
        self.base_model_name = base_model_name
        self.adapters_dir = Path(adapters_dir) if adapters_dir else None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)

        log.info("loading base model %s from %s (%s, %s)", base_model_name, self.base_model_dir, dtype, device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.base_model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(self.base_model_dir), dtype=self.dtype)
        self.model.to(self.device).eval()
        self.peft = None  # a peft.PeftModel wrapping self.model once the first adapter is loaded

        config = self.model.config
        gen_config = getattr(self.model, "generation_config", None)
        self._base_eos = _as_id_set(getattr(gen_config, "eos_token_id", None), getattr(config, "eos_token_id", None),
                                    self.tokenizer.eos_token_id)
        positions = getattr(config, "max_position_embeddings", None) or 4096
        self.max_total_tokens = int(max_total_tokens or positions)
        self.max_input_tokens = int(max_input_tokens or self.max_total_tokens - 1)
        if self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be less than max_total_tokens")
        self.base_target = self._target(None, self.tokenizer)

        self._model_lock = threading.Lock()  # forward passes and adapter loads
        self._load_lock = threading.Lock()  # serialises adapter (re)scans and loads
        self._registry_lock = threading.Lock()  # self._adapters
        self._adapters: dict[str, Target] = {}
        self._next_name = 0
        if decode_threads is None:
            # Decode steps are a thousand small operations over weights read once per step: with 2 cores, the
            # second OpenMP thread mostly wakes up and waits. One thread decoded 1.75x faster at 8 concurrent
            # requests and 1.07x with one (benchmarks/serve_throughput.py); prefills keep all threads (1.5x
            # faster with 2 on 200-token prompts). Measured on 2 cores only: larger CPUs keep PyTorch's setting.
            decode_threads = 1 if self.device.type == "cpu" and torch.get_num_threads() <= 2 else 0
        self.scheduler = Scheduler(self, max_batch_size, decode_threads)

        self._static: dict[str, AdapterSpec] = {}
        for adapter_id, path in (static_adapters or {}).items():
            self._static[adapter_id] = static_spec(adapter_id, path, base_model_name)
        for spec in self._static.values():
            self._load(spec)  # a static adapter that does not load is a startup error, as in TGI
        for adapter_id, spec in scan_adapters_dir(self.adapters_dir, base_model_name).matching.items():
            if adapter_id in self._static:
                continue
            try:
                self._load(spec)
            except AdapterLoadError as exc:
                log.error("%s", exc.message)

    # -- adapters ---------------------------------------------------------------------------------------------

    @property
    def model_dtype(self) -> str:
        return str(self.dtype)

    def loaded_adapters(self) -> list[Target]:
        with self._registry_lock:
            return sorted(self._adapters.values(), key=lambda t: t.adapter_id)

    def available_adapter_ids(self) -> list[str]:
        """Loaded adapters plus those waiting in adapters-dir (loaded on their first request)."""
        ids = set(self._static) | {t.adapter_id for t in self.loaded_adapters()}
        ids |= set(scan_adapters_dir(self.adapters_dir, self.base_model_name).matching)
        return sorted(ids)

    def _target(self, spec: AdapterSpec | None, tokenizer, peft_name: str | None = None) -> Target:
        eos = self._base_eos | _as_id_set(tokenizer.eos_token_id)
        special = frozenset(tokenizer.all_special_ids) | frozenset(eos)
        return Target(spec.adapter_id if spec else None, tokenizer, frozenset(eos), special, peft_name, spec)

    @staticmethod
    def _fresh(target: Target) -> bool:
        spec = target.spec
        return spec is None or spec.source == "static" or metadata_stamp(spec.path) == spec.stamp

    def get_adapter(self, adapter_id: str) -> Target:
        """The loaded adapter with exactly this id, loading it (rescanning adapters-dir) when needed."""
        with self._registry_lock:
            target = self._adapters.get(adapter_id)
        if target is not None and self._fresh(target):
            return target
        with self._load_lock:
            with self._registry_lock:
                target = self._adapters.get(adapter_id)
            if target is not None and self._fresh(target):
                return target
            spec = self._static.get(adapter_id)
            if spec is None:
                scan = scan_adapters_dir(self.adapters_dir, self.base_model_name)
                spec = scan.matching.get(adapter_id)
                if spec is None:
                    with self._registry_lock:
                        gone = self._adapters.pop(adapter_id, None)  # its directory was removed
                    if gone is not None:
                        self._unload(gone)
                    if adapter_id in scan.foreign:
                        raise AdapterNotFound(
                            f"Adapter '{adapter_id}' was trained for base model '{scan.foreign[adapter_id]}'; "
                            f"this server serves '{self.base_model_name}'")
                    raise AdapterNotFound(f"Adapter '{adapter_id}' not found on this server "
                                          f"(base model '{self.base_model_name}')")
            return self._load(spec)

    def unload_adapter(self, adapter_id: str) -> bool:
        """Drop a loaded adapter's weights (the studio undeploying it); False when it was not loaded.
        A later request for it loads it again from adapters-dir, and is refused once its directory is gone."""
        with self._load_lock:
            with self._registry_lock:
                target = self._adapters.pop(adapter_id, None)
            if target is not None:
                self._unload(target)
        return target is not None

    def _load(self, spec: AdapterSpec) -> Target:
        # PEFT adapter names become module attribute keys, so ids like DB.SCHEMA.NAME cannot be used.
        peft_name = f"adapter_{self._next_name}"
        self._next_name += 1
        try:
            tokenizer = (AutoTokenizer.from_pretrained(str(spec.path)) if _has_tokenizer(spec.path)
                         else self.tokenizer)
            with self._model_lock:
                if self.peft is None:
                    from peft import PeftModel

                    self.peft = PeftModel.from_pretrained(self.model, str(spec.path), adapter_name=peft_name,
                                                          is_trainable=False)
                    self.peft.eval()
                else:
                    self.peft.load_adapter(str(spec.path), adapter_name=peft_name, is_trainable=False)
        except Exception as exc:  # noqa: BLE001 - any failure is reported as the adapter's
            raise AdapterLoadError(f"Adapter '{spec.adapter_id}' at {spec.path} could not be loaded: "
                                   f"{type(exc).__name__}: {exc}") from exc
        target = self._target(spec, tokenizer, peft_name)
        with self._registry_lock:
            previous = self._adapters.get(spec.adapter_id)
            self._adapters[spec.adapter_id] = target
        log.info("loaded adapter %s from %s as %s", spec.adapter_id, spec.path, peft_name)
        if previous is not None:  # retrained in place: drop the old weights
            self._unload(previous)
        return target

    def _unload(self, target: Target) -> None:
        if self.scheduler.defer_unload(target.peft_name, lambda: self._unload(target)):
            log.info("adapter %s (%s) unloads when its running requests finish", target.adapter_id, target.peft_name)
            return
        with self._model_lock:
            try:
                with warnings.catch_warnings():  # "adapter X was active which is now deleted"
                    warnings.simplefilter("ignore", UserWarning)
                    self.peft.delete_adapter(target.peft_name)
            except Exception as exc:  # noqa: BLE001 - a leftover adapter only costs memory
                log.warning("could not unload adapter %s (%s): %s", target.adapter_id, target.peft_name, exc)
            else:
                log.info("unloaded adapter %s (%s)", target.adapter_id, target.peft_name)

    # -- text -------------------------------------------------------------------------------------------------

    def encode(self, target: Target, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(target.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def tokenize_with_offsets(self, target: Target, text: str) -> list[dict]:
        enc = target.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        return [{"id": i, "text": text[s:e], "start": s, "stop": e}
                for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"])]

    def apply_chat_template(self, target: Target, messages: list[dict]) -> str:
        tokenizer = target.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError("This model's tokenizer has no chat template")
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001 - jinja errors, raise_exception() in templates
            raise TemplateError(f"Cannot apply the chat template: {exc}") from exc
        return text if isinstance(text, str) else tokenizer.decode(text)

    # -- generation -------------------------------------------------------------------------------------------

    def current_target(self, target: Target) -> Target:
        """The adapter loaded now under ``target``'s id, for a request that resolved it before a reload."""
        with self._registry_lock:
            current = self._adapters.get(target.adapter_id)
        if current is None:
            raise AdapterNotFound(f"Adapter '{target.adapter_id}' was removed from this server")
        return current

    def generate(self, target: Target, input_ids: list[int], params: SamplingParams,
                 on_token: OnToken | None = None, cancel: threading.Event | None = None) -> GenResult:
        """Decode up to ``params.max_new_tokens`` tokens in the shared batch; blocking, so call it from a worker
        thread. ``on_token(token, top_tokens, result)`` is called for every token (on the decode thread);
        ``result`` is set on the last one. Raises Cancelled once ``cancel`` is set."""
        return self.scheduler.submit(target, input_ids, params, on_token, cancel)
