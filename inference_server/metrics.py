"""Prometheus metrics for the inference server (``GET /metrics``), named like TGI's where TGI has the metric.

Every app gets its own :class:`prometheus_client.CollectorRegistry`, so several apps in one process (tests)
never collide. prometheus_client exposes a counter ``tgi_request_count`` as the sample
``tgi_request_count_total`` (OpenMetrics style); TGI's own exporter omits the ``_total``.

- ``tgi_request_count{route,status}``: every HTTP request, by route (unknown paths are ``other``) and status.
- ``tgi_request_success{route}`` / ``tgi_request_failure{route,status}``: generation requests, by outcome.
- ``tgi_request_duration{route}``: seconds per generation request (streams: until the last byte is sent).
- ``tgi_request_input_length`` / ``tgi_request_generated_tokens``: prompt and generated tokens per generation.
- ``inference_prompt_tokens`` / ``inference_generated_tokens``: the same as running totals (``..._total``).
- ``tgi_batch_current_size``: rows in the running batch (requests decoding together, see ``batching.py``).
- ``tgi_queue_size``: requests waiting for room in the batch (``max_batch_size``); a request over
  ``max_concurrent_requests`` is refused with 429 instead of queued.
- ``tgi_batch_next_size``: the batch's size each time requests join it.
- ``tgi_batch_inference_count{method}`` / ``tgi_batch_forward_duration{method}``: forward passes, ``prefill`` (one
  per request) and ``decode`` (one per step for the whole batch), and their seconds.
- ``inference_batch_decode_rows``: rows over all decode steps (``..._total``); divided by the decode count, the
  mean batch size.
- ``inference_requests_in_flight``: requests holding one of ``max_concurrent_requests`` slots.
"""
from __future__ import annotations

import time
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

GENERATION_ROUTES = frozenset({"/generate", "/generate_stream", "/", "/v1/chat/completions", "/v1/completions"})
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_FORWARD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, routes: set[str] | frozenset[str], in_flight: Callable[[], int],
                 batch_size: Callable[[], int] = lambda: 0, queue_size: Callable[[], int] = lambda: 0) -> None:
        self.routes = frozenset(routes)
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_count = Counter("tgi_request_count", "HTTP requests, by route and status code",
                                     ["route", "status"], registry=r)
        self.request_success = Counter("tgi_request_success", "Generation requests that succeeded", ["route"],
                                       registry=r)
        self.request_failure = Counter("tgi_request_failure", "Generation requests that failed",
                                       ["route", "status"], registry=r)
        self.request_duration = Histogram("tgi_request_duration", "Generation request duration in seconds",
                                          ["route"], buckets=_DURATION_BUCKETS, registry=r)
        self.input_length = Histogram("tgi_request_input_length", "Prompt tokens per generation",
                                      buckets=_TOKEN_BUCKETS, registry=r)
        self.generated_tokens = Histogram("tgi_request_generated_tokens", "Generated tokens per generation",
                                          buckets=_TOKEN_BUCKETS, registry=r)
        self.prompt_tokens_total = Counter("inference_prompt_tokens", "Prompt tokens, all generations", registry=r)
        self.generated_tokens_total = Counter("inference_generated_tokens", "Generated tokens, all generations",
                                              registry=r)
        Gauge("tgi_batch_current_size", "Rows in the running batch", registry=r).set_function(batch_size)
        Gauge("tgi_queue_size", "Requests waiting for room in the batch", registry=r).set_function(queue_size)
        Gauge("inference_requests_in_flight", "Requests holding a concurrency slot", registry=r).set_function(in_flight)
        self.batch_next_size = Histogram("tgi_batch_next_size", "Batch size each time requests join it",
                                         buckets=_BATCH_BUCKETS, registry=r)
        self.batch_inference_count = Counter("tgi_batch_inference_count", "Forward passes, by method", ["method"],
                                             registry=r)
        self.batch_forward_duration = Histogram("tgi_batch_forward_duration", "Forward pass seconds, by method",
                                                ["method"], buckets=_FORWARD_BUCKETS, registry=r)
        self.batch_decode_rows = Counter("inference_batch_decode_rows", "Rows over all decode steps", registry=r)

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe_generation(self, input_length: int, generated_tokens: int) -> None:
        self.input_length.observe(input_length)
        self.generated_tokens.observe(generated_tokens)
        self.prompt_tokens_total.inc(input_length)
        self.generated_tokens_total.inc(generated_tokens)

    # the scheduler's BatchListener, called on the decode thread

    def observe_forward(self, method: str, rows: int, seconds: float) -> None:
        self.batch_inference_count.labels(method).inc()
        self.batch_forward_duration.labels(method).observe(seconds)
        if method == "decode":
            self.batch_decode_rows.inc(rows)

    def observe_next_batch(self, rows: int) -> None:
        self.batch_next_size.observe(rows)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.request_count.labels(route, str(status)).inc()
        if route in GENERATION_ROUTES:
            self.request_duration.labels(route).observe(seconds)
            if status < 400:
                self.request_success.labels(route).inc()
            else:
                self.request_failure.labels(route, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request (a stream until its end)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.metrics.route_label(scope["path"])
        status = 500
        start = time.perf_counter()

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - start)
