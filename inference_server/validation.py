"""Request validation: TGI's ``/generate`` bodies and the OpenAI-style chat and completions bodies, each turned
into :class:`GenerationRequest`, the one shape generation takes whatever route a request came by.

Messages and statuses are TGI's router's where TGI has the check (422 ``validation``). Adapter selection:
``parameters.adapter_id`` on the TGI routes; on chat and completions, a body ``adapter_id`` (TGI-style) or else
``model``, where the base model's name, ``"tgi"`` or no model mean the base model and any other value is an
adapter id, matched exactly. An unknown adapter id is an error naming it, never the base model's answer: a 404
``adapter_not_found`` on the OpenAI routes (an unknown model), a 422 ``validation`` on TGI's own routes (an
invalid parameter).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference_server.engine import Engine
from inference_server.errors import AdapterNotFound, UnknownAdapterParameter, ValidationError
from inference_server.generation import SamplingParams, Target

MAX_TOP_N_TOKENS = 5
MAX_CLIENT_BATCH_SIZE = 4  # prompts in one /v1/completions request
# InferenceClient(base_url=...).chat_completion() without `model` sends this placeholder.
CLIENT_PLACEHOLDER_MODEL = "dummy"


@dataclass
class GenerationRequest:
    """One generation, validated: what to run it on, and what its response must carry."""

    target: Target
    input_ids: list[int]
    params: SamplingParams
    model_name: str  # what the response calls the model: the adapter id or the base model name
    # TGI routes
    details: bool = False
    text_prefix: str = ""  # return_full_text: the prompt, ahead of the generated text
    # OpenAI routes
    logprobs: bool = False
    include_usage: bool = False  # stream_options.include_usage: a usage chunk before [DONE]


async def json_body(request) -> dict:
    try:
        body = await request.json()
    except Exception as exc:  # noqa: BLE001
        raise ValidationError(f"Failed to deserialize the JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationError("The JSON body must be an object")
    return body


def tokenize_body(body: dict) -> tuple[str, Any]:
    """/tokenize's text, and the ``parameters.adapter_id`` whose tokenizer splits it."""
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise ValidationError("`inputs` must be a string")
    params = body.get("parameters") or {}
    return inputs, params.get("adapter_id") if isinstance(params, dict) else None


def _number(params: dict, key: str, *, integer: bool = False) -> float | int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ValidationError(f"`{key}` must be {'an integer' if integer else 'a number'}. Given: {value!r}")
    return int(value) if integer else float(value)


def _flag(params: dict, key: str) -> bool:
    value = params.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(f"`{key}` must be a boolean. Given: {value!r}")
    return value


def _stop_list(value: Any, max_stop: int) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ValidationError("`stop` must be a string or a list of strings")
    stops = [s for s in stops if s]
    if len(stops) > max_stop:
        raise ValidationError(f"`stop` supports up to {max_stop} stop sequences. Given: {len(stops)}")
    return stops


def _check_sampling(temperature, top_p, top_k, typical_p, repetition_penalty, frequency_penalty, seed) -> None:
    if temperature is not None and temperature < 0:
        raise ValidationError("`temperature` must be strictly positive")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValidationError("`top_p` must be > 0.0 and <= 1.0")
    if top_k is not None and top_k <= 0:
        raise ValidationError("`top_k` must be strictly positive")
    if typical_p is not None and not 0 < typical_p <= 1:
        raise ValidationError("`typical_p` must be > 0.0 and <= 1.0")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValidationError("`repetition_penalty` must be strictly positive")
    if frequency_penalty is not None and not -2 <= frequency_penalty <= 2:
        raise ValidationError("`frequency_penalty` must be >= -2.0 and <= 2.0")
    if seed is not None and not 0 <= seed < 2 ** 64:
        raise ValidationError("`seed` must be a non-negative 64-bit integer")


class RequestValidator:
    """Validates bodies against the engine's token limits and the server's own. Tokenizing and resolving an
    adapter (which may load it) block: callers run the ``*_request`` methods in a worker thread."""

    def __init__(self, engine: Engine, *, max_new_tokens_limit: int, max_stop_sequences: int) -> None:
        self.engine = engine
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_stop_sequences = max_stop_sequences

    # -- targets --

    def is_base(self, model: str | None) -> bool:
        return model in (None, "", "tgi", self.engine.base_model_name)

    def target_for(self, adapter_id: str | None, *, chat_model: bool = False) -> Target:
        if self.is_base(adapter_id):
            return self.engine.base_target
        if not isinstance(adapter_id, str):
            raise ValidationError(f"`adapter_id` must be a string. Given: {adapter_id!r}")
        try:
            return self.engine.get_adapter(adapter_id)
        except AdapterNotFound as exc:
            if chat_model and adapter_id == CLIENT_PLACEHOLDER_MODEL:
                return self.engine.base_target
            if not chat_model:  # OpenAI routes answer 404 for an unknown model; TGI's own routes a 422
                raise UnknownAdapterParameter(exc.message) from None
            raise

    def deployment_adapter_id(self, body: dict) -> str:
        """The ``adapter_id`` of the studio's /adapters/load and /adapters/unload: an adapter, never the base."""
        adapter_id = body.get("adapter_id")
        if not isinstance(adapter_id, str) or not adapter_id or self.is_base(adapter_id):
            raise ValidationError(f"`adapter_id` must name an adapter. Given: {adapter_id!r}")
        return adapter_id

    # -- token budget --

    def _budget(self, input_ids: list[int], max_new_tokens: int | None) -> int:
        engine = self.engine
        n = len(input_ids)
        if n > engine.max_input_tokens:
            raise ValidationError(f"`inputs` must have less than {engine.max_input_tokens} tokens. Given: {n}")
        if max_new_tokens is None:
            max_new_tokens = min(self.max_new_tokens_limit, engine.max_total_tokens - n)
            if max_new_tokens <= 0:
                raise ValidationError(f"`inputs` tokens + `max_new_tokens` must be <= {engine.max_total_tokens}. "
                                      f"Given: {n} `inputs` tokens and 1 `max_new_tokens`")
            return max_new_tokens
        if max_new_tokens <= 0:
            raise ValidationError("`max_new_tokens` must be strictly positive")
        if max_new_tokens > self.max_new_tokens_limit:
            raise ValidationError(f"`max_new_tokens` must be <= {self.max_new_tokens_limit}. Given: {max_new_tokens}")
        if n + max_new_tokens > engine.max_total_tokens:
            raise ValidationError(f"`inputs` tokens + `max_new_tokens` must be <= {engine.max_total_tokens}. "
                                  f"Given: {n} `inputs` tokens and {max_new_tokens} `max_new_tokens`")
        return max_new_tokens

    # -- TGI's GenerateRequest --

    def generate_request(self, body: dict, *, stream: bool) -> GenerationRequest:
        inputs = body.get("inputs")
        if not isinstance(inputs, str):
            raise ValidationError("`inputs` must be a string")
        if not inputs:
            raise ValidationError("`inputs` cannot be empty")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValidationError("`parameters` must be an object")
        best_of = _number(params, "best_of", integer=True)
        if best_of is not None and best_of != 1:
            raise ValidationError("`best_of` != 1 is not supported by this server")
        if params.get("grammar") is not None:
            raise ValidationError("grammar is not supported")
        if _flag(params, "watermark"):
            raise ValidationError("watermark is not supported")
        decoder_input_details = _flag(params, "decoder_input_details")
        if stream and decoder_input_details:
            raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
        top_n = _number(params, "top_n_tokens", integer=True) or 0
        if not 0 <= top_n <= MAX_TOP_N_TOKENS:
            raise ValidationError(f"`top_n_tokens` must be >= 0 and <= {MAX_TOP_N_TOKENS}. Given: {top_n}")
        temperature = _number(params, "temperature")
        top_p = _number(params, "top_p")
        top_k = _number(params, "top_k", integer=True)
        typical_p = _number(params, "typical_p")
        repetition_penalty = _number(params, "repetition_penalty")
        frequency_penalty = _number(params, "frequency_penalty")
        seed = _number(params, "seed", integer=True)
        _check_sampling(temperature, top_p, top_k, typical_p, repetition_penalty, frequency_penalty, seed)
        stop = _stop_list(params.get("stop"), self.max_stop_sequences)
        truncate = _number(params, "truncate", integer=True)
        max_new_tokens = _number(params, "max_new_tokens", integer=True)
        add_special_tokens = body.get("add_special_tokens", True)
        details = _flag(params, "details") or decoder_input_details
        return_full_text = _flag(params, "return_full_text")

        target = self.target_for(params.get("adapter_id"))
        input_ids = self.engine.encode(target, inputs, add_special_tokens=bool(add_special_tokens))
        if truncate is not None:
            if not 0 < truncate <= self.engine.max_input_tokens:
                raise ValidationError(f"`truncate` must be strictly positive and less than "
                                      f"{self.engine.max_input_tokens}. Given: {truncate}")
            input_ids = input_ids[-truncate:]
        if not input_ids:
            raise ValidationError("`inputs` cannot be empty")
        sampling = SamplingParams(
            max_new_tokens=self._budget(input_ids, max_new_tokens), do_sample=_flag(params, "do_sample"),
            temperature=temperature, top_k=top_k, top_p=top_p, typical_p=typical_p,
            repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty, seed=seed, stop=stop,
            top_n_tokens=top_n, decoder_input_details=decoder_input_details)
        return GenerationRequest(target, input_ids, sampling, self._model_name(target), details=details,
                                 text_prefix=inputs if return_full_text else "")

    # -- OpenAI's chat completions --

    def chat_request(self, body: dict) -> GenerationRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValidationError("`messages` must be a non-empty list")
        clean = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValidationError(f"`messages[{i}]` must be an object with a string `role`")
            content = message.get("content")
            if content is None:
                content = ""
            elif isinstance(content, list):  # OpenAI content parts: keep the text ones
                parts = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        parts.append(part["text"])
                    else:
                        raise ValidationError(f"`messages[{i}].content` may only hold text parts")
                content = "".join(parts)
            elif not isinstance(content, str):
                raise ValidationError(f"`messages[{i}].content` must be a string or a list of text parts")
            clean.append({"role": message["role"], "content": content})
        for unsupported in ("tools", "response_format"):
            if body.get(unsupported) is not None:
                raise ValidationError(f"`{unsupported}` is not supported by this server")
        options = self._openai_options(body)
        logprobs = _flag(body, "logprobs")
        top_logprobs = _number(body, "top_logprobs", integer=True) or 0
        if not 0 <= top_logprobs <= MAX_TOP_N_TOKENS:
            raise ValidationError(f"`top_logprobs` must be >= 0 and <= {MAX_TOP_N_TOKENS}. Given: {top_logprobs}")

        target = self._openai_target(body)
        prompt = self.engine.apply_chat_template(target, clean)
        input_ids = self.engine.encode(target, prompt, add_special_tokens=False)  # the template has them
        sampling = self._openai_sampling(input_ids, options, top_n_tokens=top_logprobs if logprobs else 0)
        return GenerationRequest(target, input_ids, sampling, self._model_name(target), logprobs=logprobs,
                                 include_usage=options["include_usage"])

    # -- OpenAI's (legacy) completions --

    def completion_requests(self, body: dict, *, stream: bool) -> list[GenerationRequest]:
        """One request per prompt (``prompt``: a string or a list of them)."""
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValidationError("`prompt` must be a string or a non-empty list of strings")
        if len(prompts) > MAX_CLIENT_BATCH_SIZE:
            raise ValidationError(f"Number of prompts must be <= {MAX_CLIENT_BATCH_SIZE}. Given: {len(prompts)}")
        if stream and len(prompts) > 1:
            raise ValidationError("`stream` == true supports a single prompt only. Given: "
                                  f"{len(prompts)} prompts")
        if body.get("suffix") is not None:
            raise ValidationError("`suffix` is not supported by this server")
        if _flag(body, "echo"):
            raise ValidationError("`echo` == true is not supported by this server")
        best_of = _number(body, "best_of", integer=True)
        if best_of is not None and best_of != 1:
            raise ValidationError("`best_of` != 1 is not supported by this server")
        if body.get("logprobs") not in (None, False, 0):
            raise ValidationError("`logprobs` is not supported on /v1/completions")
        options = self._openai_options(body)
        repetition_penalty = _number(body, "repetition_penalty")
        _check_sampling(None, None, None, None, repetition_penalty, None, None)

        target = self._openai_target(body)
        model_name = self._model_name(target)
        work = []
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise ValidationError("`prompt` cannot be empty" if len(prompts) == 1 else
                                      f"`prompt[{i}]` cannot be empty")
            input_ids = self.engine.encode(target, prompt, add_special_tokens=True)  # no template: as /generate
            if not input_ids:
                raise ValidationError("`prompt` cannot be empty")
            sampling = self._openai_sampling(input_ids, options, repetition_penalty=repetition_penalty)
            work.append(GenerationRequest(target, input_ids, sampling, model_name,
                                          include_usage=options["include_usage"]))
        return work

    # -- what chat and completions share --

    def _model_name(self, target: Target) -> str:
        return target.adapter_id or self.engine.base_model_name

    def _openai_options(self, body: dict) -> dict:
        n = _number(body, "n", integer=True)
        if n is not None and n != 1:
            raise ValidationError("`n` must be 1")
        temperature = _number(body, "temperature")
        top_p = _number(body, "top_p")
        frequency_penalty = _number(body, "frequency_penalty")
        seed = _number(body, "seed", integer=True)
        _check_sampling(temperature, top_p, None, None, None, frequency_penalty, seed)
        max_tokens = _number(body, "max_tokens", integer=True)
        if max_tokens is None:
            max_tokens = _number(body, "max_completion_tokens", integer=True)
        stop = _stop_list(body.get("stop"), self.max_stop_sequences)
        stream_options = body.get("stream_options") or {}
        include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
        return {"temperature": temperature, "top_p": top_p, "frequency_penalty": frequency_penalty, "seed": seed,
                "max_tokens": max_tokens, "stop": stop, "include_usage": include_usage}

    def _openai_target(self, body: dict) -> Target:
        """A body ``adapter_id`` (TGI-style), else ``model``: the base model's name, "tgi" or none is the base."""
        adapter_id = body.get("adapter_id")
        return self.target_for(adapter_id if adapter_id else body.get("model"), chat_model=True)

    def _openai_sampling(self, input_ids: list[int], options: dict, *, top_n_tokens: int = 0,
                         repetition_penalty: float | None = None) -> SamplingParams:
        # TGI: greedy only when temperature is 0; otherwise sample (temperature 1.0 when absent).
        temperature = options["temperature"]
        return SamplingParams(
            max_new_tokens=self._budget(input_ids, options["max_tokens"]), do_sample=temperature != 0,
            temperature=temperature if temperature else None, top_p=options["top_p"],
            repetition_penalty=repetition_penalty, frequency_penalty=options["frequency_penalty"],
            seed=options["seed"], stop=options["stop"], top_n_tokens=top_n_tokens)
