"""Sampling, one row at a time: each request's own parameters, seeded generator, stop sequences and detokenizer,
so a row in a batch picks exactly the tokens it would pick decoding alone. Rows decoding greedily without
penalties are sampled together, with one batched log-softmax and argmax (:func:`sample_rows`)."""
from __future__ import annotations

import math
import random
import threading

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from inference_server.generation import GenResult, OnToken, SamplingParams, Target


class _Detokenizer:
    """TGI's incremental decoding: text for each new token, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer, prompt_ids: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-5:])  # a little prompt context for tokenizers that clean up spaces
        self.prefix = 0
        self.read = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix:self.read])
        new_text = self._decode(self.ids[self.prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return new_text[len(prefix_text):]
        return ""


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


def token_text(target: Target, token_id: int) -> str:
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
        piece = token_text(target, next_id) if special else self.detok.push(next_id)
        token = {"id": next_id, "text": piece, "logprob": logprob, "special": special}
        tops = None
        if self.top_tokens is not None:
            values, indices = torch.topk(logprobs, min(params.top_n_tokens, logprobs.shape[-1]))
            tops = [{"id": int(i), "text": token_text(target, int(i)), "logprob": float(v),
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
