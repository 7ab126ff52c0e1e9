"""Continuous batching across adapters: one decode thread runs every active request in one forward per step.

A request waits in a queue until the running batch has room (``max_batch_size`` rows), then joins it between two
steps: its prompt is prefilled on its own (its adapter active), its first token sampled, and its keys and values
copied into the batch's cache. Rows are left-padded along the time axis: an attention mask hides each row's
padding and each row has its own position ids, so a row computes what it would compute alone. Rows asking for
different adapters share each forward: rows are kept ordered by adapter and each LoRA layer adds each adapter's
update to its range of rows, the arithmetic of PEFT's mixed-adapter batches (``adapter_names``) without their
per-layer gathers (:class:`RowGroupLoRA`). Finished and cancelled rows leave the batch between steps; the time
axis is trimmed to the longest remaining row when they do.

Sampling stays per row (each request's own parameters, seeded generator, stop sequences and detokenizer); rows
decoding greedily without penalties are sampled with one batched log-softmax and argmax.

Forward passes hold the engine's model lock, which adapter loads and unloads take too, so an adapter loaded
while a batch runs joins at the next step. Unloading an adapter that rows are still decoding with waits until
they finish (:meth:`Scheduler.defer_unload`).
"""
from __future__ import annotations

import atexit
import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from inference_server.engine import GenResult, OnToken, SamplingParams, Target, _Detokenizer
from inference_server.errors import AdapterNotFound, Cancelled

log = logging.getLogger("inference_server")

# Spare cache room allocated at a time along the time axis: the batch's cache grows in place, and is copied only
# when it runs out of room or rows join or leave.
CACHE_CHUNK = 64


class BatchListener(Protocol):
    """What the scheduler reports (the server's metrics implement it); called on the decode thread."""

    def observe_forward(self, method: str, rows: int, seconds: float) -> None: ...

    def observe_next_batch(self, rows: int) -> None: ...


def _warpers(params: SamplingParams) -> list:
    warpers = []
    if params.temperature is not None and params.temperature not in (0, 1.0):
        warpers.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        warpers.append(TopKLogitsWarper(params.top_k))
    if params.top_p is not None and params.top_p < 1.0:
        warpers.append(TopPLogitsWarper(params.top_p))
    if params.typical_p is not None and params.typical_p < 1.0:
        warpers.append(TypicalLogitsWarper(params.typical_p))
    return warpers


def _token_text(target: Target, token_id: int) -> str:
    return target.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


class Sequence:
    """One request: its sampling state, its tokens so far, and how its caller learns the outcome."""

    def __init__(self, target: Target, input_ids: list[int], params: SamplingParams, on_token: OnToken | None,
                 cancel: threading.Event | None) -> None:
        self.target = target
        self.input_ids = input_ids
        self.params = params
        self.on_token = on_token
        self.cancel = cancel
        self.done = threading.Event()
        self.result: GenResult | None = None
        self.error: BaseException | None = None

        self.sampling = params.sampling
        self.seed = None
        self.generator = None
        if self.sampling:
            self.seed = params.seed if params.seed is not None else random.getrandbits(63)
            self.generator = torch.Generator(device="cpu")
            self.generator.manual_seed(self.seed)
        self.warpers = _warpers(params) if self.sampling else []
        self.repetition = (RepetitionPenaltyLogitsProcessor(params.repetition_penalty)
                           if params.repetition_penalty not in (None, 1.0) else None)
        # greedy without penalties: sampled together with the other such rows, on the batch's tensor
        self.plain_greedy = not self.sampling and self.repetition is None and not params.frequency_penalty

        self.all_ids = list(input_ids)
        self.detok = _Detokenizer(target.tokenizer, input_ids)
        self.text = ""
        self.tokens: list[dict] = []
        self.top_tokens: list[list[dict]] | None = [] if params.top_n_tokens else None
        self.prefill: list[dict] = []
        self.max_stop = max((len(s) for s in params.stop), default=0)
        self.length = len(input_ids)  # tokens in the cache: the prompt, then each token fed back
        self.next_id = -1  # the last sampled token: the row's input at the next step

    @property
    def peft_name(self) -> str | None:
        return self.target.peft_name

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def finish(self, result: GenResult | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()

    # -- sampling: exactly what one request decoding alone does --

    def sample(self, logits: torch.Tensor) -> bool:
        """Sample the next token from this row's logits (penalties and warpers applied); True when finished."""
        scores = logits.float().unsqueeze(0)
        if self.repetition is not None or self.params.frequency_penalty:
            history = torch.tensor([self.all_ids], device=scores.device)
            if self.repetition is not None:
                scores = self.repetition(history, scores)
            if self.params.frequency_penalty:
                counts = torch.bincount(history[0], minlength=scores.shape[-1])[: scores.shape[-1]]
                scores = scores - self.params.frequency_penalty * counts.to(scores.dtype)
        for warper in self.warpers:
            scores = warper(None, scores)
        logprobs = torch.log_softmax(scores, dim=-1)[0]
        if self.sampling:
            next_id = int(torch.multinomial(logprobs.exp().cpu(), 1, generator=self.generator).item())
        else:
            next_id = int(torch.argmax(logprobs).item())
        return self.emit(next_id, float(logprobs[next_id]), logprobs)

    def emit(self, next_id: int, logprob: float, logprobs: torch.Tensor) -> bool:
        """Record the chosen token and tell the caller; True when the sequence is finished."""
        target, params = self.target, self.params
        self.all_ids.append(next_id)
        self.next_id = next_id
        special = next_id in target.special_ids
        piece = _token_text(target, next_id) if special else self.detok.push(next_id)
        token = {"id": next_id, "text": piece, "logprob": logprob, "special": special}
        tops = None
        if self.top_tokens is not None:
            values, indices = torch.topk(logprobs, min(params.top_n_tokens, logprobs.shape[-1]))
            tops = [{"id": int(i), "text": _token_text(target, int(i)), "logprob": float(v),
                     "special": int(i) in target.special_ids}
                    for v, i in zip(values.tolist(), indices.tolist()) if math.isfinite(v)]
            self.top_tokens.append(tops)
        self.tokens.append(token)

        finish = None
        stop_index = None
        if next_id in target.eos_ids:
            finish = "eos_token"
        elif not special and piece:
            start = max(0, len(self.text) - self.max_stop + 1)
            self.text += piece
            found = [i for i in (self.text.find(s, start) for s in params.stop if s) if i >= 0]
            if found:
                finish, stop_index = "stop_sequence", min(found)
        if finish is None and len(self.tokens) >= params.max_new_tokens:
            finish = "length"
        result = None
        if finish is not None:
            result = GenResult(self.text, self.tokens, finish, self.seed, len(self.input_ids), self.prefill,
                               self.top_tokens, stop_index)
        if self.on_token is not None:
            self.on_token(token, tops, result)
        if result is not None:
            self.finish(result)
            return True
        return False


def sample_rows(rows: list[Sequence], logits: torch.Tensor) -> list[Sequence]:
    """Sample one token for each row (``logits``: one row of logits per sequence); returns the rows still going.

    A row whose sampling or callback fails is finished with that error; the others carry on."""
    plain = [i for i, row in enumerate(rows) if row.plain_greedy]
    if plain:
        scores = logits if len(plain) == len(rows) else logits[plain]
        logprobs = torch.log_softmax(scores.float(), dim=-1)
        chosen = torch.argmax(logprobs, dim=-1)
        chosen_logprobs = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
        for j, (i, next_id) in enumerate(zip(plain, chosen.tolist())):
            try:
                rows[i].emit(next_id, chosen_logprobs[j], logprobs[j])
            except Exception as exc:  # noqa: BLE001 - this row's failure, e.g. its stream's callback
                rows[i].finish(error=exc)
    for i, row in enumerate(rows):
        if not row.plain_greedy:
            try:
                row.sample(logits[i])
            except Exception as exc:  # noqa: BLE001
                row.finish(error=exc)
    return [row for row in rows if not row.done.is_set()]


# -- the batch's key/value cache --------------------------------------------------------------------------------

class BatchCache(DynamicCache):
    """Keys and values of every row, ``[rows, kv heads, capacity, head dim]`` per layer, written in place.

    DynamicCache grows by concatenation, copying the whole cache every step (about 10 ms a step for 8 rows of
    the 135M model here); this one has room to grow into and is copied only when rows join or leave or the room
    runs out. ``length`` columns are filled; rows are left-padded and ``mask`` (True = a real token, the spare
    room included) hides the padding.
    """

    def __init__(self, key_store: list[torch.Tensor], value_store: list[torch.Tensor], mask: torch.Tensor,
                 length: int) -> None:
        super().__init__()
        self.key_store, self.value_store, self.mask, self.length = key_store, value_store, mask, length

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        keys, values = self.key_store[layer_idx], self.value_store[layer_idx]
        keys[:, :, self.length:end] = key_states
        values[:, :, self.length:end] = value_states
        return keys[:, :, :end], values[:, :, :end]

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return self.length

    def attention_mask(self) -> torch.Tensor:
        """The 4D mask for the next one-token step (transformers uses a 4D mask as given)."""
        return self.mask[:, None, None, :self.length + 1]

    def grow(self, room: int) -> None:
        """Make room for at least ``room`` more columns."""
        if self.length + room <= self.capacity:
            return
        capacity = self.length + max(room, CACHE_CHUNK)
        for store in (self.key_store, self.value_store):
            for layer, old in enumerate(store):
                new = old.new_zeros((*old.shape[:2], capacity, old.shape[3]))
                new[:, :, :self.length] = old[:, :, :self.length]
                store[layer] = new
        mask = self.mask.new_ones((self.mask.shape[0], capacity))
        mask[:, :self.length] = self.mask[:, :self.length]
        self.mask = mask


def rebuild_cache(cache: BatchCache | None, sources: list[int | DynamicCache], lengths: list[int],
                  room: int) -> BatchCache:
    """The cache of the next batch, one row per source: an int is that row of ``cache``, a DynamicCache a
    newcomer's prefill (one row). ``lengths`` are the rows' token counts; rows are left-padded to the longest,
    with ``room`` spare columns. Padding is zeros, never uninitialised memory: a masked position still
    multiplies its value by 0."""
    length = max(lengths)
    capacity = length + room
    kept = [(row, source) for row, source in enumerate(sources) if isinstance(source, int)]
    joining = [(row, source) for row, source in enumerate(sources) if not isinstance(source, int)]
    span = max((lengths[row] for row, _ in kept), default=0)  # kept rows all end at column cache.length
    if kept:
        device = cache.mask.device
        same_rows = [source for _, source in kept] == list(range(cache.mask.shape[0]))
        old_rows = torch.tensor([source for _, source in kept], device=device)
        new_rows = torch.tensor([row for row, _ in kept], device=device)
        in_place = same_rows and [row for row, _ in kept] == list(range(len(kept)))
    layers = len(cache.key_store) if cache is not None else len(joining[0][1].layers)
    stores: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    for layer in range(layers):
        for which, out in enumerate(stores):
            if cache is not None:
                old = (cache.key_store, cache.value_store)[which][layer]
            else:
                old = _layer_tensor(joining[0][1], layer, which)
            new = old.new_zeros((len(sources), old.shape[1], capacity, old.shape[3]))
            if kept:
                filled = old[:, :, cache.length - span:cache.length]
                if in_place:
                    new[:len(kept), :, length - span:length] = filled
                else:
                    new[new_rows, :, length - span:length] = filled.index_select(0, old_rows)
            for row, prefilled in joining:
                new[row, :, length - lengths[row]:length] = _layer_tensor(prefilled, layer, which)[0]
            out.append(new)
    mask = torch.ones((len(sources), capacity), dtype=torch.bool, device=stores[0][0].device)
    for row, n in enumerate(lengths):
        mask[row, :length - n] = False
    return BatchCache(stores[0], stores[1], mask, length)


def _layer_tensor(cache: DynamicCache, layer: int, which: int) -> torch.Tensor:
    return cache.layers[layer].keys if which == 0 else cache.layers[layer].values


# -- mixed-adapter LoRA on row ranges ----------------------------------------------------------------------------

class RowGroupLoRA:
    """PEFT's mixed-adapter batches, lean: the batch's rows are ordered by adapter, so each adapter's rows are
    one contiguous range, and every LoRA linear adds ``B(A(x[rows])) * scaling`` to ``output[rows]`` in place.

    That is the arithmetic of PEFT's ``_mixed_batch_forward``, which however gathers and scatters each adapter's
    rows through Python index lists in every one of the model's LoRA layers, and registers a hook on each of them,
    at every step: 2.6x the single-adapter overhead per step here (8 rows, 2 adapters, SmolLM2-135M, 210 LoRA
    layers). Here every LoRA layer has PEFT's own adapters switched off (it then returns its base layer's
    output), and a forward hook registered once adds the adapters.
    A batch holding an adapter it cannot compute this way (DoRA and other LoRA variants, non-Linear LoRA layers,
    modules_to_save, trainable tokens: :meth:`supports`) runs one forward per adapter instead, through PEFT's
    ordinary single-adapter path (PEFT's mixed batches refuse DoRA as well).
    """

    def __init__(self) -> None:
        self.groups: list[tuple[str, int, int]] | None = None  # (peft name, first row, end row) for the forward
        self._layers: list = []  # every LoRA linear, hooked
        self._hooked: set[int] = set()
        self._supported: dict[str, bool] = {}
        self._adapters_seen: frozenset = frozenset()

    def refresh(self, peft) -> None:
        """Hook LoRA linears that appeared with newly loaded adapters."""
        adapters = frozenset(peft.peft_config)
        if adapters == self._adapters_seen:
            return
        from peft.tuners.lora.layer import Linear as LoraLinear

        for module in peft.modules():
            if isinstance(module, LoraLinear) and id(module) not in self._hooked:
                module.register_forward_hook(self._add_adapters)
                self._hooked.add(id(module))
                self._layers.append(module)
        self._supported = {name: ok for name, ok in self._supported.items() if name in adapters}
        self._adapters_seen = adapters

    def forward(self, peft, groups: list[tuple[str, int, int]], inputs: dict):
        """The model's forward pass, adapter ``name`` on rows ``start:end`` for each of ``groups``."""
        for layer in self._layers:
            layer._disable_adapters = True  # what PEFT's disable_adapter() sets, without its two module walks
        self.groups = groups
        try:
            return peft.get_base_model()(**inputs)
        finally:
            self.groups = None
            for layer in self._layers:
                layer._disable_adapters = False

    def supports(self, peft, name: str) -> bool:
        ok = self._supported.get(name)
        if ok is None:
            ok = self._supported[name] = self._check(peft, name)
        return ok

    @staticmethod
    def _check(peft, name: str) -> bool:
        from peft.tuners.lora.layer import Linear as LoraLinear
        from peft.tuners.lora.layer import LoraLayer

        config = peft.peft_config[name]
        if (getattr(config, "use_dora", False) or getattr(config, "modules_to_save", None)
                or getattr(config, "trainable_token_indices", None)):
            return False
        for module in peft.modules():
            if not isinstance(module, LoraLayer):
                continue
            if name in module.lora_embedding_A or name in module.lora_variant:
                return False
            if name in module.lora_A and (not isinstance(module, LoraLinear) or module.merged):
                return False
        return True

    def _add_adapters(self, module, args, output):
        groups = self.groups
        if not groups:
            return None
        x = args[0]
        for name, start, end in groups:
            lora_a = module.lora_A._modules.get(name)
            if lora_a is None:
                continue  # this adapter does not target this layer
            lora_b = module.lora_B._modules[name]
            # dropout is the identity in eval mode; the same operations, in the same order, as PEFT's
            delta = F.linear(F.linear(x[start:end], lora_a.weight, lora_a.bias), lora_b.weight, lora_b.bias)
            output[start:end] += delta * module.scaling[name]
        return None


@dataclass
class _Output:
    logits: torch.Tensor
    past_key_values: object


def _single_adapter_forward(peft, name: str | None, inputs: dict):
    if name is None:
        with peft.disable_adapter():
            return peft(**inputs)
    peft.set_adapter(name)
    return peft(**inputs)


def _rows(value, start: int, end: int):
    """Rows ``start:end`` of a forward pass's input (the cache: a view that writes through to the batch's)."""
    if isinstance(value, BatchCache):
        return BatchCache([k[start:end] for k in value.key_store], [v[start:end] for v in value.value_store],
                          value.mask[start:end], value.length)
    if isinstance(value, torch.Tensor):
        return value[start:end]
    return value


# -- the scheduler --------------------------------------------------------------------------------------------------

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
        engine = self.engine
        peft = engine.peft
        if peft is None:
            return engine.model(**inputs)
        adapters = {name for name in names if name is not None}
        missing = adapters - set(peft.peft_config)
        if missing:  # unloaded behind the scheduler's back: these rows cannot go on
            raise AdapterNotFound(f"Adapter(s) unloaded while generating: {', '.join(sorted(missing))}")
        groups: list[list] = []  # runs of rows with the same adapter: [name, start, end]
        for row, name in enumerate(names):
            if groups and groups[-1][0] == name:
                groups[-1][2] = row + 1
            else:
                groups.append([name, row, row + 1])
        self.lora.refresh(peft)
        if all(self.lora.supports(peft, name) for name in adapters):
            return self.lora.forward(peft, [(name, start, end) for name, start, end in groups if name is not None],
                                     inputs)
        # an adapter only PEFT's single-adapter path computes: each adapter's rows in a forward of their own, on
        # views of the batch's cache
        if len(groups) == 1:
            return _single_adapter_forward(peft, names[0], inputs)
        logits = [_single_adapter_forward(peft, name, {key: _rows(value, start, end) for key, value in inputs.items()})
                  .logits for name, start, end in groups]
        return _Output(torch.cat(logits), inputs.get("past_key_values"))

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
                seq.prefill = [{"id": tid, "text": _token_text(seq.target, tid),
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
