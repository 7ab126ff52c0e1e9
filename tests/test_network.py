"""The test-owned network between deployments (tests/support/network.py) does exactly the damage asked
for, at the byte asked for, against a real HTTP server."""
from __future__ import annotations

import http.client
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.support.network import Proxy

BODY = bytes(range(256)) * 64  # 16 KiB, every byte value


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _raw(proxy: Proxy) -> bytes:
    """The whole response stream the proxy forwards, headers included."""
    with socket.create_connection(("127.0.0.1", urlsplit(proxy.url).port)) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_it_passes_bytes_through_untouched(server):
    with Proxy(server) as proxy:
        assert urllib.request.urlopen(proxy.url, timeout=5).read() == BODY
        assert (proxy.connections, proxy.corrupted, proxy.cuts) == (1, 0, 0)


def test_corrupt_after_flips_exactly_the_byte_at_that_offset_of_each_response(server):
    with Proxy(server) as proxy:
        clean = _raw(proxy)
        proxy.corrupt_after(5000)
        for _ in range(2):
            damaged = _raw(proxy)
            assert len(damaged) == len(clean)
            assert [i for i in range(len(clean)) if clean[i] != damaged[i]] == [5000]
            assert damaged[5000] == clean[5000] ^ 0xFF
        assert proxy.corrupted == 2
        proxy.corrupt_after(len(clean))  # past the end: nothing to flip
        assert _raw(proxy) == clean


def test_cut_after_forwards_that_many_bytes_runs_on_cut_once_then_closes(server):
    calls = []
    with Proxy(server) as proxy:
        clean = _raw(proxy)
        proxy.cut_after(3000, on_cut=lambda: calls.append("cut"))
        assert _raw(proxy) == clean[:3000]
        assert _raw(proxy) == clean[:3000]
        assert calls == ["cut"] and proxy.cuts == 2
        # A client reading a body to its Content-Length learns it was cut short.
        with pytest.raises(http.client.IncompleteRead):
            urllib.request.urlopen(proxy.url, timeout=5).read()
        proxy.pass_through()
        assert _raw(proxy) == clean


def test_a_target_that_is_down_closes_the_connection(server):
    with Proxy("http://127.0.0.1:9/") as proxy:
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(proxy.url, timeout=5).read()
