"""What a generation is, shared by the engine, the scheduler and the routes: what it runs on (:class:`Target`),
how it samples (:class:`SamplingParams`) and what it answers (:class:`GenResult`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from inference_server.adapters import AdapterSpec


@dataclass
class SamplingParams:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    top_n_tokens: int = 0
    decoder_input_details: bool = False

    @property
    def sampling(self) -> bool:
        """TGI's rule: sample when asked to, or when any warper would change the distribution."""
        if self.temperature is not None and self.temperature == 0:
            return False  # temperature 0 always means greedy here
        warpers = ((self.temperature is not None and self.temperature != 1.0)
                   or bool(self.top_k)
                   or (self.top_p is not None and self.top_p < 1.0)
                   or (self.typical_p is not None and self.typical_p < 1.0))
        return bool(self.do_sample) or warpers


@dataclass(frozen=True)
class Target:
    """What a request runs on: the base model (adapter_id None) or one loaded adapter."""

    adapter_id: str | None
    tokenizer: object
    eos_ids: frozenset
    special_ids: frozenset
    peft_name: str | None = None
    spec: AdapterSpec | None = None


@dataclass
class GenResult:
    text: str  # the generated text: every non-special token's text, joined
    tokens: list[dict]  # TGI tokens: {"id", "text", "logprob", "special"}
    finish_reason: str  # "length" | "eos_token" | "stop_sequence"
    seed: int | None
    input_length: int
    prefill: list[dict]
    top_tokens: list[list[dict]] | None
    stop_index: int | None = None  # where in ``text`` the matched stop sequence starts

    @property
    def generated_tokens(self) -> int:
        return len(self.tokens)


OnToken = Callable[[dict, "list[dict] | None", "GenResult | None"], None]
