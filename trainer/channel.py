"""The connection between a distributed run's ranks and the process that launched it: one JSON object a line
over TCP (the ranks may be on other hosts).

Every rank connects once, says who it is and receives the run (its config and rows); rank 0 then sends its
reports (phases, steps, evaluations, the result) and asks whether to cancel; every rank says goodbye before it
exits. A rank whose connection closes without a goodbye died (killed, out of memory): that is how the
launcher tells which rank stopped a run, and why.
"""
from __future__ import annotations

import json
import socket
from typing import Any


class Connection:
    """One end of a rank's connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small reports, sent as they happen
        self.buffer = b""

    @classmethod
    def connect(cls, address: str, timeout: float = 60.0) -> "Connection":
        host, _, port = address.rpartition(":")
        return cls(socket.create_connection((host, int(port)), timeout=timeout))

    def send(self, **message: Any) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def messages(self) -> tuple[list[dict[str, Any]], bool]:
        """What has arrived (reading once, without waiting if the socket is non-blocking), and whether the
        other end has closed."""
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            data = None
        except OSError:  # reset by a peer that died
            data = b""
        if data is not None:
            self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line], data == b""

    def receive(self) -> dict[str, Any]:
        """The next message, waiting for it (the rank's side, a blocking socket)."""
        while b"\n" not in self.buffer:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the launcher closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()
