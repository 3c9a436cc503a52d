"""Fixtures of the hardening suites: small recording HTTP servers for what the emulator cannot play.

A ``RecordingServer`` listens on 127.0.0.1 (port 0), records every request it receives and
answers with what its ``respond`` function returns. Tests use one as a *foreign* host (which
must receive nothing: no request, no token, no password) and one as a misbehaving API that
answers with redirects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Seen:
    """One request a recording server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _answer_200(seen: Seen) -> Response:
    return 200, {"Content-Type": "application/json"}, b'{"success": true, "result": "foreign"}'


class RecordingServer:
    """An HTTP server on 127.0.0.1 that records requests and answers with ``respond(seen)``."""

    def __init__(self, respond: Callable[[Seen], Response] = _answer_200) -> None:
        self.respond = respond
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(seen)
                status, headers, payload = server.respond(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def foreign_server() -> Iterator[RecordingServer]:
    """A server on another port of 127.0.0.1: a host the provider must never talk to."""
    server = RecordingServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def recording_server() -> Iterator[Callable[[Callable[[Seen], Response]], RecordingServer]]:
    """Factory of recording servers with a custom ``respond`` function (all closed after the test)."""
    servers: list[RecordingServer] = []

    def _make(respond: Callable[[Seen], Response]) -> RecordingServer:
        servers.append(RecordingServer(respond))
        return servers[-1]

    try:
        yield _make
    finally:
        for server in servers:
            server.close()
