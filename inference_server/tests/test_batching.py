"""Continuous batching across adapters: every request in a batch answers exactly what it answers alone.

In-process tests drive the engine's scheduler directly, where they can make requests overlap deterministically
(holding the model lock while requests queue up, or pausing a request in its token callback, which runs on the
decode thread, until another one has queued). The rest run against real server processes.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from inference_server.tests._support import AUTH, post_json
from inference_server.tests.conftest import (
    BASE_NAME,
    DIR_ADAPTER,
    STATIC_ADAPTER,
    make_adapter,
    server_process,
)
from inference_server.tests.test_metrics import scrape, scrape_until, value

PROMPTS = ["The support ticket says the printer is on fire. Category:",
           "Invoice 1234 was charged twice. Category:",
           "Hi",
           "Summarise the following conversation between a customer and the support team in one line:"]
TARGETS = [None, DIR_ADAPTER, STATIC_ADAPTER]  # None: the base model
HOT_ADAPTER = "DEMO.PUBLIC.HOT_LOADED"


class Recorder:
    """The scheduler's listener: rows of every forward pass."""

    def __init__(self) -> None:
        self.forwards: list[tuple[str, int]] = []
        self.joins: list[int] = []

    def observe_forward(self, method: str, rows: int, seconds: float) -> None:
        self.forwards.append((method, rows))

    def observe_next_batch(self, rows: int) -> None:
        self.joins.append(rows)

    def decode_rows(self) -> list[int]:
        return [rows for method, rows in self.forwards if method == "decode"]


@pytest.fixture(scope="module")
def engine(models, tmp_path_factory):
    from inference_server.engine import Engine

    adapters_dir = tmp_path_factory.mktemp("batching-adapters")
    shutil.copytree(models.adapter_dirs[DIR_ADAPTER], adapters_dir / "support-triage")
    engine = Engine(models.base, BASE_NAME, adapters_dir, {STATIC_ADAPTER: models.static_adapter}, max_batch_size=8)
    engine.recorder = Recorder()
    engine.scheduler.add_listener(engine.recorder)
    return engine


def target(engine, adapter_id):
    return engine.base_target if adapter_id is None else engine.get_adapter(adapter_id)


def params(max_new_tokens=20, **kwargs):
    from inference_server.generation import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, **kwargs)


def ids(result) -> list[int]:
    return [t["id"] for t in result.tokens]


def generate(engine, adapter_id, prompt, **kwargs):
    t = target(engine, adapter_id)
    return engine.generate(t, engine.encode(t, prompt), params(**kwargs))


def alone(engine, adapter_id, prompt, **kwargs):
    assert engine.scheduler.batch_size == 0
    result = generate(engine, adapter_id, prompt, **kwargs)
    assert engine.recorder.decode_rows()[-1:] in ([], [1])
    return result


@contextmanager
def queued_together(engine, count: int):
    """Hold the decode thread at its next forward pass until ``count`` requests are pending, so that they all
    join the batch at the same step."""
    with engine._model_lock:
        yield
        deadline = time.monotonic() + 20
        while engine.scheduler.pending < count:
            assert time.monotonic() < deadline, "requests did not queue"
            time.sleep(0.01)


def run_together(engine, jobs: list[tuple]) -> list:
    """jobs: (adapter_id, prompt, SamplingParams kwargs), decoded in one batch; their results, in order."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        with queued_together(engine, len(jobs)):
            futures = [pool.submit(generate, engine, adapter_id, prompt, **kwargs)
                       for adapter_id, prompt, kwargs in jobs]
        return [f.result(60) for f in futures]


def test_requests_for_different_adapters_share_a_batch_and_answer_as_alone(engine):
    jobs = [(adapter, prompt, {}) for adapter in TARGETS for prompt in PROMPTS[:2]]
    expected = [alone(engine, a, p) for a, p, _ in jobs]
    for prompt in PROMPTS[:2]:  # the adapters answer differently
        assert len({tuple(ids(r)) for (a, p, _), r in zip(jobs, expected) if p == prompt}) == len(TARGETS)

    engine.recorder.forwards.clear()
    results = run_together(engine, jobs)
    assert max(engine.recorder.decode_rows()) == len(jobs)  # one forward for the base model and both adapters
    for job, got, want in zip(jobs, results, expected):
        assert ids(got) == ids(want), job
        assert got.text == want.text and got.finish_reason == want.finish_reason == "length"
        for a, b in zip(got.tokens, want.tokens):
            assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-4)


def test_a_request_joins_a_running_batch_midway(engine):
    """A short prompt, then a longer one (the batch is padded to it), then a short one (padded itself)."""
    first, longer, short = (DIR_ADAPTER, PROMPTS[2]), (STATIC_ADAPTER, PROMPTS[3]), (None, PROMPTS[1])
    expected = [alone(engine, a, p, max_new_tokens=24) for a, p in (first, longer, short)]

    engine.recorder.forwards.clear()
    reached = {5: threading.Event(), 10: threading.Event()}
    go_on = {5: threading.Event(), 10: threading.Event()}

    def pause(token, tops, result, count=[0]):  # runs on the decode thread
        count[0] += 1
        if count[0] in reached:
            reached[count[0]].set()
            assert go_on[count[0]].wait(20)

    t = target(engine, first[0])
    with ThreadPoolExecutor(3) as pool:
        a = pool.submit(engine.generate, t, engine.encode(t, first[1]), params(24), pause)
        joiners = []
        for step, (adapter, prompt) in zip((5, 10), (longer, short)):
            assert reached[step].wait(20)
            joiners.append(pool.submit(generate, engine, adapter, prompt, max_new_tokens=24))
            deadline = time.monotonic() + 20
            while engine.scheduler.pending < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            go_on[step].set()
        results = [a.result(60)] + [j.result(60) for j in joiners]
    for got, want in zip(results, expected):
        assert ids(got) == ids(want)
    rows = engine.recorder.decode_rows()
    assert rows[:4] == [1, 1, 1, 1] and rows[4:9] == [2] * 5 and 3 in rows


def test_a_cancelled_request_leaves_the_batch_and_the_others_go_on(engine):
    from inference_server.errors import Cancelled

    expected = [alone(engine, a, PROMPTS[0], max_new_tokens=30) for a in TARGETS]
    cancel = threading.Event()

    def cancel_at_4(token, tops, result, count=[0]):
        count[0] += 1
        if count[0] == 4:
            cancel.set()  # what a closed stream does

    engine.recorder.forwards.clear()
    with ThreadPoolExecutor(4) as pool:
        with queued_together(engine, 4):
            t = target(engine, DIR_ADAPTER)
            doomed = pool.submit(engine.generate, t, engine.encode(t, PROMPTS[1]), params(30), cancel_at_4, cancel)
            others = [pool.submit(generate, engine, a, PROMPTS[0], max_new_tokens=30) for a in TARGETS]
        with pytest.raises(Cancelled):
            doomed.result(60)
        results = [f.result(60) for f in others]
    assert [ids(r) for r in results] == [ids(r) for r in expected]
    rows = engine.recorder.decode_rows()
    assert rows[:3] == [4, 4, 4] and rows[3:] == [3] * (len(rows) - 3)  # it left after its 4th token


def test_stop_sequences_and_lengths_finish_rows_at_different_steps(engine):
    full = alone(engine, STATIC_ADAPTER, PROMPTS[0], max_new_tokens=20)
    texts = [t["text"] for t in full.tokens]
    stop = texts[6]
    cut = texts.index(stop) + 1
    jobs = [(STATIC_ADAPTER, PROMPTS[0], {"max_new_tokens": 20, "stop": [stop]}),
            (DIR_ADAPTER, PROMPTS[1], {"max_new_tokens": 3}),
            (None, PROMPTS[1], {"max_new_tokens": 11}),
            (STATIC_ADAPTER, PROMPTS[2], {"max_new_tokens": 16})]
    expected = [alone(engine, a, p, **kw) for a, p, kw in jobs]
    engine.recorder.forwards.clear()
    results = run_together(engine, jobs)

    assert results[0].finish_reason == "stop_sequence" and results[0].generated_tokens == cut
    assert results[0].text == "".join(texts[:cut]) and results[0].stop_index == results[0].text.rindex(stop)
    assert [r.generated_tokens for r in results[1:]] == [3, 11, 16]
    for got, want in zip(results, expected):
        assert (ids(got), got.text, got.finish_reason) == (ids(want), want.text, want.finish_reason)
    # the batch shrinks as rows finish (the first token of each comes from its prefill)
    rows = engine.recorder.decode_rows()
    assert rows == sorted(rows, reverse=True) and rows[0] == 4 and rows[-1] == 1
    assert len(rows) == 15


def test_seeded_sampling_is_the_same_alone_and_in_a_batch(engine):
    sampled = {"do_sample": True, "temperature": 1.3, "top_k": 40, "top_p": 0.95, "seed": 77,
               "repetition_penalty": 1.2, "top_n_tokens": 3}
    jobs = [(DIR_ADAPTER, PROMPTS[0], sampled), (None, PROMPTS[0], {**sampled, "seed": 5}),
            (STATIC_ADAPTER, PROMPTS[1], {}), (DIR_ADAPTER, PROMPTS[1], {"frequency_penalty": 1.0})]
    expected = [alone(engine, a, p, **kw) for a, p, kw in jobs]
    greedy = alone(engine, DIR_ADAPTER, PROMPTS[0])
    assert ids(expected[0]) != ids(greedy)  # it really sampled
    results = run_together(engine, jobs)
    for got, want in zip(results, expected):
        assert ids(got) == ids(want) and got.seed == want.seed
    assert results[0].seed == 77
    assert [[t["id"] for t in tops] for tops in results[0].top_tokens] == \
        [[t["id"] for t in tops] for tops in expected[0].top_tokens]


def test_prefill_details_are_the_same_in_a_batch(engine):
    jobs = [(DIR_ADAPTER, PROMPTS[0], {"decoder_input_details": True}), (None, PROMPTS[1], {})]
    expected = alone(engine, *jobs[0][:2], decoder_input_details=True)
    got = run_together(engine, jobs)[0]
    assert [t["id"] for t in got.prefill] == [t["id"] for t in expected.prefill]
    assert got.prefill[0]["logprob"] is None
    assert [t["logprob"] for t in got.prefill[1:]] == pytest.approx([t["logprob"] for t in expected.prefill[1:]])


def test_an_adapter_loaded_while_a_batch_runs_joins_it_and_an_unloaded_one_waits_for_its_rows(engine, models):
    reached, go_on = threading.Event(), threading.Event()

    def pause(token, tops, result, count=[0]):
        count[0] += 1
        if count[0] == 3:
            reached.set()
            assert go_on.wait(30)

    base = engine.base_target
    expected_base = alone(engine, None, PROMPTS[1], max_new_tokens=30)
    expected_dir = alone(engine, DIR_ADAPTER, PROMPTS[0], max_new_tokens=30)
    dir_peft_name = engine.get_adapter(DIR_ADAPTER).peft_name
    staged = make_adapter(models.base, models.staging / "hot", HOT_ADAPTER, BASE_NAME, seed=11)
    engine.recorder.forwards.clear()
    with ThreadPoolExecutor(3) as pool:
        with queued_together(engine, 2):
            first = pool.submit(engine.generate, base, engine.encode(base, PROMPTS[1]), params(30), pause)
            tuned = pool.submit(generate, engine, DIR_ADAPTER, PROMPTS[0], max_new_tokens=30)
        assert reached.wait(30)  # both decode; the decode thread waits in the first one's callback
        shutil.move(str(staged), str(engine.adapters_dir / "hot"))
        hot_target = engine.get_adapter(HOT_ADAPTER)  # loads while the batch is paused between steps
        hot = pool.submit(engine.generate, hot_target, engine.encode(hot_target, PROMPTS[0]), params(30))
        assert engine.unload_adapter(DIR_ADAPTER)  # its row is still decoding: the weights stay until it ends
        assert dir_peft_name in engine.peft.peft_config
        go_on.set()
        assert ids(first.result(60)) == ids(expected_base)
        assert ids(tuned.result(60)) == ids(expected_dir)
        hot_result = hot.result(60)
    assert 3 in engine.recorder.decode_rows()  # the new adapter decoded in the same batch
    assert dir_peft_name not in engine.peft.peft_config  # unloaded once its last row finished
    assert ids(hot_result) == ids(alone(engine, HOT_ADAPTER, PROMPTS[0], max_new_tokens=30))
    assert ids(hot_result) != ids(expected_dir)
    assert ids(alone(engine, DIR_ADAPTER, PROMPTS[0], max_new_tokens=30)) == ids(expected_dir)  # loads again


def test_the_row_ranges_compute_exactly_what_peft_mixed_batches_compute(engine):
    import torch

    names = [engine.get_adapter(a).peft_name if a else None for a in (DIR_ADAPTER, DIR_ADAPTER, None, STATIC_ADAPTER)]
    input_ids = torch.tensor([engine.encode(engine.base_target, PROMPTS[0])] * len(names))
    with engine._model_lock, torch.inference_mode():
        ours = engine.scheduler._forward(names, input_ids=input_ids).logits
        peft = engine.peft(input_ids=input_ids, adapter_names=[n or "__base__" for n in names]).logits
    assert torch.equal(ours, peft)
    assert not torch.equal(ours[0], ours[2]) and not torch.equal(ours[0], ours[3])


def test_an_adapter_peft_cannot_mix_decodes_beside_the_others(engine, models):
    """DoRA: PEFT's mixed batches refuse it, so its rows get a forward of their own within each step."""
    from peft import LoraConfig, get_peft_model
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(5)
    model = AutoModelForCausalLM.from_pretrained(str(models.base))
    config = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False, use_dora=True,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    out = engine.adapters_dir / "dora"
    get_peft_model(model, config).save_pretrained(str(out))
    (out / "studio_adapter.json").write_text(json.dumps({"model": "DEMO.PUBLIC.DORA", "base_model": BASE_NAME}))

    jobs = [("DEMO.PUBLIC.DORA", PROMPTS[0], {}), (DIR_ADAPTER, PROMPTS[0], {}), (None, PROMPTS[1], {}),
            ("DEMO.PUBLIC.DORA", PROMPTS[1], {"max_new_tokens": 8})]
    expected = [alone(engine, a, p, **kw) for a, p, kw in jobs]
    base = alone(engine, None, PROMPTS[0])
    assert [t["logprob"] for t in expected[0].tokens] != pytest.approx([t["logprob"] for t in base.tokens])
    engine.recorder.forwards.clear()
    results = run_together(engine, jobs)
    assert [ids(r) for r in results] == [ids(r) for r in expected]
    for got, want in zip(results, expected):
        assert [t["logprob"] for t in got.tokens] == pytest.approx([t["logprob"] for t in want.tokens], abs=1e-4)
    assert max(engine.recorder.decode_rows()) == 4


def test_max_batch_size_queues_the_rest(engine):
    jobs = [(TARGETS[i % 3], PROMPTS[i % 4], {"max_new_tokens": 6}) for i in range(11)]
    engine.recorder.forwards.clear()
    results = run_together(engine, jobs)
    assert all(r.generated_tokens == 6 for r in results)
    assert max(engine.recorder.decode_rows()) == 8 == engine.scheduler.max_batch_size


# -- the real server -------------------------------------------------------------------------------------------------

def _generate(url: str, prompt: str, adapter_id: str | None, max_new_tokens: int = 24) -> dict:
    parameters = {"max_new_tokens": max_new_tokens, "details": True}
    if adapter_id:
        parameters["adapter_id"] = adapter_id
    status, body = post_json(url + "/generate", {"inputs": prompt, "parameters": parameters})
    assert status == 200, body
    return body


def test_concurrent_server_requests_match_their_answers_alone_and_metrics_show_the_batches(server_url):
    jobs = [(prompt, adapter) for adapter in TARGETS for prompt in PROMPTS[:3]]
    expected = [_generate(server_url, p, a, 48) for p, a in jobs]
    before = scrape(server_url)
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _generate(server_url, *job, 48), jobs))
    for got, want in zip(results, expected):
        assert got["generated_text"] == want["generated_text"]
        assert [t["id"] for t in got["details"]["tokens"]] == [t["id"] for t in want["details"]["tokens"]]

    after = scrape_until(server_url, lambda s: value(s, "tgi_batch_current_size") == 0)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    steps = delta("tgi_batch_inference_count_total", method="decode")
    assert delta("tgi_batch_inference_count_total", method="prefill") == len(jobs)
    assert steps >= 47  # at least one request's 47 decode steps (its first token comes from its prefill)
    assert delta("inference_batch_decode_rows_total") == len(jobs) * 47
    assert steps < len(jobs) * 47  # rows shared steps
    assert delta("tgi_batch_next_size_count") >= 1
    assert delta("tgi_batch_next_size_sum") > delta("tgi_batch_next_size_count")  # some joined a running batch
    assert delta("tgi_batch_forward_duration_count", method="decode") == steps
    assert value(after, "tgi_queue_size") == 0


@pytest.fixture(scope="module")
def small_server(models):
    """A server with room for 3 requests in flight, 2 of them decoding together."""
    with server_process(["--base-model-dir", str(models.base), "--base-model-name", BASE_NAME,
                         "--adapter", f"{STATIC_ADAPTER}={models.static_adapter}",
                         "--max-concurrent-requests", "3", "--max-batch-size", "2", "--max-new-tokens-limit", "4000",
                         "--log-level", "warning"], models.root / "small-server.log") as url:
        yield url


def _open_stream(url: str, prompt: str, adapter_id: str | None, max_new_tokens: int):
    parameters = {"max_new_tokens": max_new_tokens}
    if adapter_id:
        parameters["adapter_id"] = adapter_id
    request = urllib.request.Request(url + "/generate_stream", method="POST",
                                     headers={"Content-Type": "application/json", **AUTH},
                                     data=json.dumps({"inputs": prompt, "parameters": parameters}).encode())
    return urllib.request.urlopen(request, timeout=60)


def test_over_the_limit_is_overloaded_and_the_batch_queues_the_rest(small_server):
    info = json.loads(urllib.request.urlopen(urllib.request.Request(small_server + "/info", headers=AUTH)).read())
    assert info["max_concurrent_requests"] == 3 and info["max_batch_size"] == 2
    streams = [_open_stream(small_server, PROMPTS[i], adapter, 4000)
               for i, adapter in enumerate((None, STATIC_ADAPTER, None))]
    try:
        for stream in streams[:2]:
            assert stream.readline().startswith(b"data:")  # decoding
        # (a first token comes from the prefill, a moment before its row joins the batch)
        samples = scrape_until(small_server, lambda s: value(s, "tgi_queue_size") == 1
                               and value(s, "tgi_batch_current_size") == 2)
        assert value(samples, "tgi_batch_current_size") == 2  # the third waits for room in the batch
        assert value(samples, "tgi_queue_size") == 1
        assert value(samples, "inference_requests_in_flight") == 3
        for path, body in (("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 2}}),
                           ("/v1/completions", {"prompt": "x", "max_tokens": 2})):
            assert post_json(small_server + path, body) == (429, {"error": "Model is overloaded",
                                                                  "error_type": "overloaded"})
    finally:
        for stream in streams:
            stream.close()  # the clients go away: their rows leave the batch and the queue
    samples = scrape_until(small_server, lambda s: value(s, "inference_requests_in_flight") == 0
                           and value(s, "tgi_batch_current_size") == 0 and value(s, "tgi_queue_size") == 0,
                           timeout=20)
    assert value(samples, "tgi_batch_current_size") == value(samples, "tgi_queue_size") == 0
    assert post_json(small_server + "/generate", {"inputs": "x", "parameters": {"max_new_tokens": 2}})[0] == 200


def test_a_disconnected_stream_leaves_the_other_request_unharmed(small_server):
    expected = _generate(small_server, PROMPTS[0], STATIC_ADAPTER, 200)
    stream = _open_stream(small_server, PROMPTS[1], None, 4000)
    with ThreadPoolExecutor(1) as pool:
        try:
            assert stream.readline().startswith(b"data:")
            other = pool.submit(_generate, small_server, PROMPTS[0], STATIC_ADAPTER, 200)
            samples = scrape_until(small_server, lambda s: value(s, "tgi_batch_current_size") == 2)
            assert value(samples, "tgi_batch_current_size") == 2  # decoding together
            for _ in range(5):
                stream.readline()
        finally:
            stream.close()
        got = other.result(60)
    assert got["generated_text"] == expected["generated_text"]
    assert [t["id"] for t in got["details"]["tokens"]] == [t["id"] for t in expected["details"]["tokens"]]
    scrape_until(small_server, lambda s: value(s, "tgi_batch_current_size") == 0, timeout=20)
