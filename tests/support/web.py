"""The web app over HTTP for tests whose other processes (worker, inference server) share its rows."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serve_web_app() -> Iterator[str]:
    """Serve the web app on Django's live-server thread and yield its URL. Unlike pytest-django's
    live_server, it does not flush every table after each test: use it with conftest's live_db, whose rows
    are committed (the stack's registrations included). StaticFilesHandler serves static/ through the
    finders, as StaticLiveServerTestCase does (the tests collect no static files)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()
