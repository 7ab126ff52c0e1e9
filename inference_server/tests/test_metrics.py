"""``GET /metrics``: Prometheus text, TGI's metric names, one registry per app."""
from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from inference_server.tests._support import AUTH, TOKEN, open_url, post_json
from inference_server.tests.conftest import BASE_NAME

PROMPT = "The support ticket says the printer is on fire. Category:"


def scrape(server_url: str) -> dict:
    """{(sample name, sorted labels): value} from /metrics, checked to parse as Prometheus text."""
    with open_url(server_url + "/metrics", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(server_url: str, ready, timeout: float = 5.0) -> dict:
    """Scrape until ``ready(samples)``: a request is counted as its response finishes, just after the client
    may already have read it."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server_url)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_counters_go_up_by_the_requests_and_their_tokens(server_url):
    route = "/v1/completions"
    before = scrape(server_url)
    outs = []
    for max_tokens in (3, 5):
        status, out = post_json(server_url + route, {"model": BASE_NAME, "prompt": PROMPT, "max_tokens": max_tokens,
                                                     "temperature": 0})
        assert status == 200
        outs.append(out)
    status, _ = post_json(server_url + route, {"model": "DEMO.PUBLIC.NO_SUCH_MODEL", "prompt": PROMPT})
    assert status == 404

    def delta(samples, name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    after = scrape_until(server_url, lambda s: delta(s, "tgi_request_count_total", route=route, status="404") >= 1)
    assert delta(after, "tgi_request_count_total", route=route, status="200") == 2
    assert delta(after, "tgi_request_count_total", route=route, status="404") == 1
    assert delta(after, "tgi_request_success_total", route=route) == 2
    assert delta(after, "tgi_request_failure_total", route=route, status="404") == 1
    assert delta(after, "tgi_request_duration_count", route=route) == 3
    assert delta(after, "tgi_request_duration_sum", route=route) > 0
    completion_tokens = sum(o["usage"]["completion_tokens"] for o in outs)
    prompt_tokens = sum(o["usage"]["prompt_tokens"] for o in outs)
    assert completion_tokens == 8
    assert delta(after, "inference_generated_tokens_total") == completion_tokens
    assert delta(after, "inference_prompt_tokens_total") == prompt_tokens
    assert delta(after, "tgi_request_generated_tokens_sum") == completion_tokens
    assert delta(after, "tgi_request_generated_tokens_count") == 2
    assert delta(after, "tgi_request_input_length_sum") == prompt_tokens
    assert value(after, "tgi_batch_current_size") == 0  # nothing in flight now
    assert ("tgi_queue_size", ()) in after


def test_streams_and_other_routes_are_counted(server_url):
    before = scrape(server_url)
    status, _ = post_json(server_url + "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}})
    assert status == 200
    with urllib.request.urlopen(urllib.request.Request(
            server_url + "/generate_stream", method="POST", headers={"Content-Type": "application/json", **AUTH},
            data=b'{"inputs": "' + PROMPT.encode() + b'", "parameters": {"max_new_tokens": 4}}')) as response:
        response.read()
    urllib.request.urlopen(server_url + "/health").read()

    def delta(samples, name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    after = scrape_until(server_url, lambda s: delta(s, "inference_generated_tokens_total") >= 6 and
                         delta(s, "tgi_request_count_total", route="/generate_stream", status="200") >= 1)
    assert delta(after, "tgi_request_count_total", route="/generate", status="200") == 1
    assert delta(after, "tgi_request_count_total", route="/generate_stream", status="200") == 1
    assert delta(after, "tgi_request_count_total", route="/health", status="200") == 1
    assert delta(after, "inference_generated_tokens_total") == 6
    assert delta(after, "tgi_request_generated_tokens_count") == 2


def test_each_app_has_its_own_registry(models):
    from inference_server import create_app

    first = create_app(models.base, BASE_NAME, token=TOKEN)
    second = create_app(models.base, BASE_NAME, token=TOKEN, engine=first.state.engine)  # no duplicate-metric error
    assert first.state.metrics.registry is not second.state.metrics.registry
    first.state.metrics.observe_generation(4, 2)
    names = {f.name: f for f in text_string_to_metric_families(second.state.metrics.render().decode())}
    assert names["inference_generated_tokens"].samples[0].value == 0
    names = {f.name: f for f in text_string_to_metric_families(first.state.metrics.render().decode())}
    assert names["inference_generated_tokens"].samples[0].value == 2
