"""Prompt parity: for greedy decoding the server answers exactly what PEFT's own ``generate`` answers on the
same adapter and prompt, chat requests rendered with the chat template stored with the adapter; and a merged
adapter (``merge_and_unload()``) answers like the unmerged one, in-process and served as a base model.

Token ids are compared exactly, no tolerance. A tie between the two most likely tokens could flip on a
different summation order (PEFT's separate LoRA matmuls vs merged weights, a batched forward pass), so the
prompts and NEW_TOKENS were chosen on these fixtures (tiny-llama, adapters seeded 1 and 2) for a wide
margin: at every greedy step of every answer the server's is compared with, the top logit leads the
runner-up by more than 0.1 (least: 0.109, the base model's chat), while merged and unmerged logits differ
by under 4e-5. (The first message tried, "My printer is on fire...", had a step with a 0.016 lead.)
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inference_server.tests._support import post_json
from inference_server.tests.conftest import (
    ADAPTER_TEMPLATE,
    BASE_NAME,
    DIR_ADAPTER,
    STATIC_ADAPTER,
    server_process,
)

PROMPT = "The support ticket says the printer is on fire. Category:"
MESSAGES = [{"role": "user", "content": "Summarise: the server is down."}]
# With 10 new tokens the adapter's answer on the base template's prompt differs from its answer on its own
# template's (at the last token: this 2-layer model mostly looks at the last few prompt tokens).
NEW_TOKENS = 10
MERGED_NAME = "tiny-llama-support-triage-merged"


def _load_base(models):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(models.base)).eval()


def _load_peft(models, adapter_id: str):
    from peft import PeftModel

    return PeftModel.from_pretrained(_load_base(models), str(models.adapter_dirs[adapter_id])).eval()


def peft_generate(model, input_ids: list[int]) -> list[int]:
    """Transformers' own greedy ``generate``: the new token ids."""
    import torch

    ids = torch.tensor([input_ids])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=NEW_TOKENS)
    return out[0, len(input_ids):].tolist()


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                              return_dict=True)["input_ids"])


@pytest.fixture(scope="module")
def tokenizers(models):
    from transformers import AutoTokenizer

    adapter = AutoTokenizer.from_pretrained(str(models.adapter_dirs[DIR_ADAPTER]))
    assert adapter.chat_template == ADAPTER_TEMPLATE
    return {"adapter": adapter, "base": AutoTokenizer.from_pretrained(str(models.base))}


@pytest.fixture(scope="module")
def references(models):
    """One model per target, each loaded on its own: the base, and PEFT on each adapter."""
    return {BASE_NAME: _load_base(models), DIR_ADAPTER: _load_peft(models, DIR_ADAPTER),
            STATIC_ADAPTER: _load_peft(models, STATIC_ADAPTER)}


@pytest.fixture(scope="module")
def merged(models):
    return _load_peft(models, DIR_ADAPTER).merge_and_unload()


def _chat(url: str, model: str, messages: list[dict] = MESSAGES) -> dict:
    status, body = post_json(url + "/v1/chat/completions", {"model": model, "messages": messages,
                                                             "max_tokens": NEW_TOKENS, "temperature": 0})
    assert status == 200, body
    return body


def _generate(url: str, prompt: str, adapter_id: str | None = None) -> dict:
    params = {"max_new_tokens": NEW_TOKENS, "details": True}
    if adapter_id is not None:
        params["adapter_id"] = adapter_id
    status, body = post_json(url + "/generate", {"inputs": prompt, "parameters": params})
    assert status == 200, body
    return body


def _ids(body: dict) -> list[int]:
    return [t["id"] for t in body["details"]["tokens"]]


def test_chat_answer_is_peft_generate_on_the_adapters_own_template(server_url, references, tokenizers):
    tokenizer = tokenizers["adapter"]
    prompt_ids = chat_ids(tokenizer, MESSAGES)
    expected = peft_generate(references[DIR_ADAPTER], prompt_ids)
    assert len(expected) == NEW_TOKENS  # no early eos: the comparison covers every step

    out = _chat(server_url, DIR_ADAPTER)
    assert out["choices"][0]["message"]["content"] == tokenizer.decode(expected, skip_special_tokens=True)
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": len(prompt_ids), "completion_tokens": NEW_TOKENS,
                            "total_tokens": len(prompt_ids) + NEW_TOKENS}

    # token for token: the same rendered prompt through /generate (the template adds no BOS; neither does
    # this tokenizer, so /generate's add_special_tokens changes nothing)
    rendered = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert tokenizer(rendered)["input_ids"] == prompt_ids
    assert _ids(_generate(server_url, rendered, DIR_ADAPTER)) == expected


def test_the_adapter_and_its_template_both_change_the_answer(server_url, references, tokenizers):
    """What makes the test above discriminating: the base model, or the adapter on the base model's template,
    would have answered something else."""
    adapter_prompt = chat_ids(tokenizers["adapter"], MESSAGES)
    base_prompt = chat_ids(tokenizers["base"], MESSAGES)  # with the base template's default system prompt
    assert base_prompt != adapter_prompt
    expected = peft_generate(references[DIR_ADAPTER], adapter_prompt)
    assert peft_generate(references[DIR_ADAPTER], base_prompt) != expected
    assert peft_generate(references[BASE_NAME], adapter_prompt) != expected

    # the base model's chat is rendered with the base template, and is PEFT-free generate on it
    base_answer = peft_generate(references[BASE_NAME], base_prompt)
    out = _chat(server_url, BASE_NAME)
    assert out["usage"]["prompt_tokens"] == len(base_prompt)
    assert out["choices"][0]["message"]["content"] == tokenizers["base"].decode(base_answer,
                                                                                 skip_special_tokens=True)
    assert out["choices"][0]["message"]["content"] != _chat(server_url, DIR_ADAPTER)["choices"][0]["message"]["content"]


@pytest.mark.parametrize("model", [BASE_NAME, DIR_ADAPTER, STATIC_ADAPTER])
def test_generate_tokens_are_peft_generate(server_url, references, tokenizers, model):
    prompt_ids = tokenizers["adapter"](PROMPT)["input_ids"]
    assert prompt_ids == tokenizers["base"](PROMPT)["input_ids"]  # same tokenizer, different template only
    expected = peft_generate(references[model], prompt_ids)
    assert len(expected) == NEW_TOKENS

    out = _generate(server_url, PROMPT, None if model == BASE_NAME else model)
    assert _ids(out) == expected
    assert out["generated_text"] == tokenizers["base"].decode(expected, skip_special_tokens=True)
    assert out["details"]["finish_reason"] == "length"


def test_generate_with_the_adapter_differs_from_the_base_model(references, tokenizers):
    prompt_ids = tokenizers["base"](PROMPT)["input_ids"]
    base = peft_generate(references[BASE_NAME], prompt_ids)
    assert peft_generate(references[DIR_ADAPTER], prompt_ids) != base
    assert peft_generate(references[STATIC_ADAPTER], prompt_ids) != base


def test_merged_and_unmerged_adapters_agree(references, merged, tokenizers):
    from peft import PeftModel

    assert not isinstance(merged, PeftModel)  # plain weights: W + scale * B @ A
    for prompt_ids in (chat_ids(tokenizers["adapter"], MESSAGES), tokenizers["base"](PROMPT)["input_ids"]):
        assert peft_generate(merged, prompt_ids) == peft_generate(references[DIR_ADAPTER], prompt_ids)


def _serve(base_dir: Path, name: str, log: Path):
    """The real server on ``base_dir`` alone (no adapters), as conftest's ``server_url`` starts it."""
    return server_process(["--base-model-dir", str(base_dir), "--base-model-name", name, "--log-level", "warning"],
                          log)


@pytest.fixture(scope="module")
def merged_server_url(models, merged, tokenizers):
    """A second server whose base model is the merged adapter, with the adapter's tokenizer and template."""
    merged_dir = models.root / "merged-support-triage"
    merged.save_pretrained(str(merged_dir))
    tokenizers["adapter"].save_pretrained(str(merged_dir))
    with _serve(merged_dir, MERGED_NAME, models.root / "merged-server.log") as url:
        yield url


def test_a_server_on_the_merged_weights_answers_like_the_unmerged_adapter(server_url, merged_server_url):
    merged_chat = _chat(merged_server_url, MERGED_NAME)
    adapter_chat = _chat(server_url, DIR_ADAPTER)
    assert merged_chat["model"] == MERGED_NAME and adapter_chat["model"] == DIR_ADAPTER
    assert merged_chat["choices"] == adapter_chat["choices"]
    assert merged_chat["usage"] == adapter_chat["usage"]

    merged_generate = _generate(merged_server_url, PROMPT)
    adapter_generate = _generate(server_url, PROMPT, DIR_ADAPTER)
    assert _ids(merged_generate) == _ids(adapter_generate)
    assert merged_generate["generated_text"] == adapter_generate["generated_text"]


def test_parity_holds_for_requests_running_together(server_url, references, tokenizers):
    """Concurrent requests for different adapters (batched together by a batching server) still answer
    exactly what each adapter answers alone."""
    prompt_ids = tokenizers["base"](PROMPT)["input_ids"]
    adapter_prompt = chat_ids(tokenizers["adapter"], MESSAGES)
    expected_ids = {model: peft_generate(ref, prompt_ids) for model, ref in references.items()}
    expected_chat = tokenizers["adapter"].decode(peft_generate(references[DIR_ADAPTER], adapter_prompt),
                                                 skip_special_tokens=True)

    jobs = [("generate", model) for model in references for _ in range(2)] + [("chat", DIR_ADAPTER)] * 2

    def run(job):
        kind, model = job
        if kind == "chat":
            return _chat(server_url, model)["choices"][0]["message"]["content"]
        return _ids(_generate(server_url, PROMPT, None if model == BASE_NAME else model))

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(run, jobs))
    for (kind, model), answer in zip(jobs, answers):
        assert answer == (expected_chat if kind == "chat" else expected_ids[model]), (kind, model)
