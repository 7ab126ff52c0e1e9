"""The network between two deployments, owned by the test: a TCP forwarder on 127.0.0.1 that passes each
connection on to a target, or damages what comes back. It is the one thing the two-deployment tests stand
in for (a real network can corrupt or cut a transfer; two processes on one machine never would).

Deterministic: each connection takes the mode set when it was accepted, and counts the response bytes it
forwards from zero (every HTTP request here opens its own connection):
- pass_through(): bytes go both ways untouched;
- corrupt_after(n): the response byte at offset n is flipped (a response of n bytes or fewer is untouched);
- cut_after(n, on_cut): n response bytes are forwarded, then on_cut() runs (say, the test stops the other
  deployment's web app; only at the first cut after cut_after()) and the connection is closed.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

CHUNK = 64 * 1024


class Proxy:
    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._lock = threading.Lock()
        self._mode: tuple[str, int] = ("pass", 0)
        self._on_cut: Callable[[], object] | None = None
        # What the proxy did, for tests to assert that the damage they meant really happened.
        self.connections = self.corrupted = self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def pass_through(self) -> None:
        with self._lock:
            self._mode, self._on_cut = ("pass", 0), None

    def corrupt_after(self, n: int) -> None:
        with self._lock:
            self._mode, self._on_cut = ("corrupt", n), None

    def cut_after(self, n: int, on_cut: Callable[[], object] | None = None) -> None:
        with self._lock:
            self._mode, self._on_cut = ("cut", n), on_cut

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                mode = self._mode
            threading.Thread(target=self._serve, args=(client, mode), name="proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket, mode: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()  # the target is down: the caller sees its connection closed, as over a network
            return
        upstream.settimeout(None)  # the connect had a bound; an answer takes as long as the target takes
        threading.Thread(target=_copy, args=(client, upstream), name="proxy-request", daemon=True).start()
        kind, n = mode
        offset = 0
        try:
            while chunk := upstream.recv(CHUNK):
                if kind == "corrupt" and offset <= n < offset + len(chunk):
                    damaged = bytearray(chunk)
                    damaged[n - offset] ^= 0xFF
                    chunk = bytes(damaged)
                    with self._lock:
                        self.corrupted += 1
                if kind == "cut" and offset + len(chunk) > n:
                    client.sendall(chunk[: n - offset])
                    self._cut()
                    return
                client.sendall(chunk)
                offset += len(chunk)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                _close(s)

    def _cut(self) -> None:
        with self._lock:
            self.cuts += 1
            on_cut, self._on_cut = self._on_cut, None
        if on_cut is not None:
            on_cut()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(CHUNK):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
