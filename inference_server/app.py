"""The TGI-compatible Starlette app: the engine, the shared server state, the routes (``routes.py``), the
token check and the metrics."""
from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware

from inference_server.auth import BearerAuth
from inference_server.engine import Engine
from inference_server.metrics import Metrics, MetricsMiddleware
from inference_server.routes import ROUTES
from inference_server.server import Server


def create_app(base_model_dir: str | Path, base_model_name: str, adapters_dir: str | Path | None = None,
               static_adapters: dict[str, str | Path] | None = None, *, token: str, max_concurrent_requests: int = 32,
               max_new_tokens_limit: int = 1024, max_input_tokens: int | None = None,
               max_total_tokens: int | None = None, max_stop_sequences: int = 4, device: str = "cpu",
               dtype: str = "float32", max_batch_size: int = 16, decode_threads: int | None = None,
               engine: Engine | None = None) -> Starlette:
    """Load the base model (and adapters) and return the TGI-compatible Starlette app.

    ``token`` is the secret every request but ``/health`` must send as ``Authorization: Bearer``.
    ``static_adapters`` maps adapter id -> adapter directory (TGI's LORA_ADAPTERS); adapters under
    ``adapters_dir`` whose studio_adapter.json names ``base_model_name`` are loaded too, and rescanned for
    on a request for an adapter id that is not loaded yet. ``app.state.server`` / ``app.state.engine`` /
    ``app.state.metrics`` expose the internals.
    """
    if not token:  # before loading anything: Starlette builds its middleware only at the first request
        raise ValueError("the inference server needs a token")
    if engine is None:
        engine = Engine(base_model_dir, base_model_name, adapters_dir, static_adapters, device=device, dtype=dtype,
                        max_input_tokens=max_input_tokens, max_total_tokens=max_total_tokens,
                        max_batch_size=max_batch_size, decode_threads=decode_threads)
    server = Server(engine, max_concurrent_requests=max_concurrent_requests,
                    max_new_tokens_limit=max_new_tokens_limit, max_stop_sequences=max_stop_sequences)
    metrics = Metrics({route.path for route in ROUTES}, lambda: server.in_flight,
                      batch_size=lambda: engine.scheduler.batch_size, queue_size=lambda: engine.scheduler.queue_size)
    server.metrics = metrics
    engine.scheduler.add_listener(metrics)

    # Authentication outermost: a request without the token reaches nothing, the metrics included.
    app = Starlette(routes=ROUTES, lifespan=_lifespan, middleware=[Middleware(BearerAuth, token=token),
                                                                   Middleware(MetricsMiddleware, metrics=metrics)])
    app.state.server = server
    app.state.engine = engine
    app.state.metrics = metrics
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    yield
    app.state.server.executor.shutdown(wait=False, cancel_futures=True)
