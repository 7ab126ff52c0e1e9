"""Continuous batching across adapters: one decode thread runs every active request in one forward per step.

A request waits in a queue until the running batch has room (``max_batch_size`` rows), then joins it between two
steps: its prompt is prefilled on its own (its adapter active), its first token sampled, and its keys and values
copied into the batch's cache. Rows are left-padded along the time axis: an attention mask hides each row's
padding and each row has its own position ids, so a row computes what it would compute alone. Rows asking for
different adapters share each forward: rows are kept ordered by adapter and each LoRA layer adds each adapter's
update to its range of rows, the arithmetic of PEFT's mixed-adapter batches (``adapter_names``) without their
per-layer gathers (``multi_lora.py``). Finished and cancelled rows leave the batch between steps; the time
axis is trimmed to the longest remaining row when they do (the cache: ``kv_cache.py``).

Sampling stays per row (each request's own parameters, seeded generator, stop sequences and detokenizer); rows
decoding greedily without penalties are sampled with one batched log-softmax and argmax (``sampling.py``).

Forward passes hold the engine's model lock, which adapter loads and unloads take too, so an adapter loaded
while a batch runs joins at the next step. Unloading an adapter that rows are still decoding with waits until
they finish (:meth:`Scheduler.defer_unload`).
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Callable, Protocol

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
from transformers import DynamicCache

from inference_server.errors import AdapterNotFound, Cancelled
from inference_server.generation import GenResult, OnToken, SamplingParams, Target
from inference_server.kv_cache import CACHE_CHUNK, BatchCache, rebuild_cache
from inference_server.multi_lora import RowGroupLoRA, forward_rows
from inference_server.sampling import Sequence, sample_rows, token_text

log = logging.getLogger("inference_server")


class BatchListener(Protocol):
    """What the scheduler reports (the server's metrics implement it); called on the decode thread."""

    def observe_forward(self, method: str, rows: int, seconds: float) -> None: ...

    def observe_next_batch(self, rows: int) -> None: ...


class Scheduler:
    """Owns the decode thread; :meth:`submit` hands it a request and waits for the answer."""

    def __init__(self, engine, max_batch_size: int = 16, decode_threads: int = 0) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.engine = engine
        self.max_batch_size = max_batch_size
        # PyTorch threads for decode steps (0: as many as for prefills, PyTorch's setting when the thread starts)
        self.decode_threads = decode_threads
        self._threads = {"prefill": 0, "decode": 0}
        self._threads_now = 0
        self.listeners: list[BatchListener] = []
        self._cond = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._rows: list[Sequence] = []  # the running batch, in cache row order
        self._admitting: list[Sequence] = []  # taken from the queue, not in the batch yet
        self._retiring: dict[str, Callable[[], None]] = {}  # peft name -> its deferred unload
        self._cache: BatchCache | None = None
        self._positions: torch.Tensor | None = None
        self._thread: threading.Thread | None = None
        self.lora = RowGroupLoRA()
        self._closing = False
        self._running = False  # the decode thread is running (guarded by _cond, unlike Thread.is_alive())

    # -- what the rest of the server sees --

    @property
    def batch_size(self) -> int:
        """Rows in the running batch."""
        return sum(1 for seq in self._rows if not seq.done.is_set())

    @property
    def queue_size(self) -> int:
        """Requests waiting for room in the batch."""
        return len(self._waiting)

    @property
    def pending(self) -> int:
        """Requests not decoding yet: waiting, or taken from the queue and about to join."""
        with self._cond:
            return len(self._waiting) + len(self._admitting)

    def add_listener(self, listener: BatchListener) -> None:
        self.listeners.append(listener)

    def submit(self, target: Target, input_ids: list[int], params: SamplingParams,
               on_token: OnToken | None = None, cancel: threading.Event | None = None) -> GenResult:
        """Queue one request and block until it is finished; raises Cancelled when ``cancel`` is set first."""
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        seq = Sequence(target, input_ids, params, on_token, cancel)
        with self._cond:
            self._waiting.append(seq)
            if not self._running:
                self._closing, self._running = False, True
                self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
                self._thread.start()
                atexit.register(self.close)
            self._cond.notify()
        seq.done.wait()
        if seq.error is not None:
            raise seq.error
        assert seq.result is not None
        return seq.result

    def defer_unload(self, peft_name: str | None, unload: Callable[[], None]) -> bool:
        """True when rows are still decoding with ``peft_name``: ``unload`` then runs once the last one leaves.
        Queued requests for it are moved to the adapter now loaded under their id, or refused."""
        with self._cond:
            if any(seq.peft_name == peft_name and not seq.done.is_set() for seq in self._rows + self._admitting):
                self._retiring[peft_name] = unload
                return True
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Stop the decode thread once the requests it has are finished (a later request starts it again).

        Run at exit too: a daemon thread still alive while the interpreter finalizes sometimes aborted it."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        atexit.unregister(self.close)

    # -- the decode thread --

    def _run(self) -> None:
        self._threads_now = torch.get_num_threads()
        self._threads = {"prefill": self._threads_now, "decode": self.decode_threads or self._threads_now}
        try:
            with torch.inference_mode():
                while True:
                    with self._cond:
                        while not self._waiting and not self._rows:
                            if self._closing:
                                return
                            self._cond.wait()
                    try:
                        self._step()
                    except BaseException as exc:  # noqa: BLE001 - never leave a caller waiting forever
                        log.exception("decode step failed")
                        self._fail_all(exc)
                    self._unload_retired()
        finally:
            with self._cond:
                self._running = False

    def _take(self, room: int) -> list[Sequence]:
        """Move up to ``room`` requests from the queue to the batch's doorstep (cancelled ones are dropped)."""
        taken: list[Sequence] = []
        with self._cond:
            if any(seq.cancelled for seq in self._waiting):
                for seq in [s for s in self._waiting if s.cancelled]:
                    self._waiting.remove(seq)
                    seq.finish(error=Cancelled())
            while self._waiting and len(taken) < room:
                taken.append(self._waiting.popleft())
            self._admitting.extend(taken)
        return taken

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            rows, self._rows, self._admitting = self._rows + self._admitting, [], []
            self._cache = self._positions = None
        for seq in rows:
            if not seq.done.is_set():
                seq.finish(error=exc)

    def _forward(self, names: list[str | None], **inputs):
        """One forward pass (under the model lock), row i with adapter ``names[i]`` (None: the base model)."""
        return forward_rows(self.engine.model, self.engine.peft, self.lora, names, inputs)

    def _step(self) -> None:
        """Admit newcomers (prefill, first token), then run one decode step for the whole batch."""
        going = sum(1 for seq in self._rows if not seq.done.is_set())
        joining: list[tuple[Sequence, DynamicCache]] = []
        # requests that arrive during a prefill join at the same step
        while taken := self._take(self.max_batch_size - going - len(joining)):
            for seq in taken:
                prefilled = self._prefill(seq)
                if prefilled is not None:
                    joining.append((seq, prefilled))

        # rows leave (finished at the last step, cancelled) and join between steps
        kept = [i for i, seq in enumerate(self._rows) if not seq.done.is_set() and not self._cancel(seq)]
        if not joining and len(kept) == len(self._rows):
            if self._admitting:  # newcomers that finished with their first token, or failed
                with self._cond:
                    self._admitting = []
        else:
            entries = [(self._rows[i], i) for i in kept] + joining
            entries.sort(key=lambda entry: entry[0].peft_name or "")  # each adapter's rows in one range
            rows = [seq for seq, _ in entries]
            cache = None
            if rows:
                room = min(CACHE_CHUNK, max(seq.params.max_new_tokens - len(seq.tokens) for seq in rows))
                cache = rebuild_cache(self._cache, [source for _, source in entries], [seq.length for seq in rows],
                                      room)
                self._positions = torch.tensor([[seq.length] for seq in rows], device=self.engine.device)
            with self._cond:
                self._rows, self._cache, self._admitting = rows, cache, []
            if joining:
                for listener in self.listeners:
                    listener.observe_next_batch(len(rows))
        if self._rows:
            self._decode()

    def _cancel(self, seq: Sequence) -> bool:
        if seq.cancelled:
            seq.finish(error=Cancelled())
            return True
        return False

    def _resolve(self, seq: Sequence) -> None:
        """Point a newcomer at the adapter now loaded under its id when its own was reloaded or removed since."""
        name = seq.peft_name
        peft = self.engine.peft
        if name is None or (peft is not None and name in peft.peft_config and name not in self._retiring):
            return
        current = self.engine.current_target(seq.target)
        if peft is None or current.peft_name not in peft.peft_config or current.peft_name in self._retiring:
            raise AdapterNotFound(f"Adapter '{seq.target.adapter_id}' was removed from this server")
        seq.target = current

    def _prefill(self, seq: Sequence) -> DynamicCache | None:
        """Run a newcomer's prompt and sample its first token; its cache, or None when it is already finished."""
        engine, params = self.engine, seq.params
        if self._cancel(seq):
            return None
        try:
            started = time.perf_counter()
            self._use_threads("prefill")
            with engine._model_lock:
                self._resolve(seq)
                prompt = torch.tensor([seq.input_ids], device=engine.device)
                out = self._forward([seq.peft_name], input_ids=prompt, use_cache=True,
                                    logits_to_keep=0 if params.decoder_input_details else 1)
            self._observe("prefill", 1, time.perf_counter() - started)
            if params.decoder_input_details:
                logprobs = torch.log_softmax(out.logits[0, :-1].float(), dim=-1)
                picked = (logprobs.gather(1, prompt[0, 1:].unsqueeze(1)).squeeze(1).tolist()
                          if len(seq.input_ids) > 1 else [])
                seq.prefill = [{"id": tid, "text": token_text(seq.target, tid),
                                "logprob": (None if i == 0 else picked[i - 1])}
                               for i, tid in enumerate(seq.input_ids)]
            logits = out.logits[:, -1]
            past = out.past_key_values
            del out
        except Exception as exc:  # noqa: BLE001 - this request's failure (e.g. its adapter is gone)
            seq.finish(error=exc)
            return None
        if not sample_rows([seq], logits):
            return None
        return past

    def _decode(self) -> None:
        rows, cache = self._rows, self._cache
        engine = self.engine
        cache.grow(1)
        input_ids = torch.tensor([[seq.next_id] for seq in rows], device=engine.device)
        self._use_threads("decode")
        started = time.perf_counter()
        with engine._model_lock:
            out = self._forward([seq.peft_name for seq in rows], input_ids=input_ids,
                                attention_mask=cache.attention_mask(), position_ids=self._positions,
                                past_key_values=cache, use_cache=True)
        self._observe("decode", len(rows), time.perf_counter() - started)
        logits = out.logits[:, -1]
        del out
        cache.length += 1
        self._positions += 1
        for seq in rows:
            seq.length += 1
        sample_rows(rows, logits)  # finished rows leave at the next step

    def _use_threads(self, phase: str) -> None:
        # Switching costs well under a microsecond; see Engine's decode_threads for why decode may use fewer.
        threads = self._threads[phase]
        if threads != self._threads_now:
            torch.set_num_threads(threads)
            self._threads_now = threads

    def _observe(self, method: str, rows: int, seconds: float) -> None:
        for listener in self.listeners:
            listener.observe_forward(method, rows, seconds)

    def _unload_retired(self) -> None:
        if not self._retiring:
            return
        with self._cond:
            in_use = {seq.peft_name for seq in self._rows if not seq.done.is_set()}
            ready = [name for name in self._retiring if name not in in_use]
            unloads = [self._retiring.pop(name) for name in ready]
        for unload in unloads:
            try:
                unload()
            except Exception:  # noqa: BLE001 - a leftover adapter only costs memory
                log.exception("deferred adapter unload failed")
