"""HTTP/1.1 plumbing of the emulator: a threaded server that tracks its connections, and a handler.

With an ``ssl.SSLContext`` the server speaks TLS: each accepted connection does its handshake in
its own thread (a slow or failing client holds up no other), bounded by a timeout; a failed
handshake (an untrusted certificate, plain HTTP) just closes that connection.

The handler reads each request's body (Content-Length or chunked, bounded in size) and hands it
to the server's ``answer`` callable; it also has the helpers every answer is built with, down to
the API's error envelope. Nothing here knows a route.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

__all__ = ["JSON_CONTENT_TYPE", "NETWORK_ERRORS", "Handler", "Server"]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_MAX_REQUEST_BODY = 16 * 1024 * 1024

# Connection resets, broken pipes, timeouts: the peer went away or the emulator is stopping.
NETWORK_ERRORS = (OSError,)
#: Seconds a client may take to complete the TLS handshake.
TLS_HANDSHAKE_TIMEOUT = 10.0


class Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that knows its open connections.

    Args:
        address: ``(host, port)`` to bind; an IPv6 host selects ``AF_INET6``.
        answer: called with the handler and the request body of every request read; it answers.
        stopping: set while the owner stops: errors raised then are not printed.
        ssl_context: serve TLS with this server-side context (None: plain HTTP).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096

    def __init__(
        self,
        address: tuple[str, int],
        answer: Callable[[Handler, bytes], None],
        stopping: threading.Event,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self.ssl_context = ssl_context
        self._stopping = stopping
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup that ``HTTPServer.server_bind`` does."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection so :meth:`close_connections` can end it."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection (in its own thread); over TLS, after the handshake."""
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        tls = self._handshake(request)
        if tls is None:
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        """Wrap ``request`` in TLS and handshake; None when the client fails it (it is then closed).

        ``wrap_socket`` takes over the file descriptor (``request`` is detached), so the open
        connection is tracked as the TLS socket from then on.
        """
        assert self.ssl_context is not None
        with self._connections_lock:
            tls = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            self._connections.discard(request)
            self._connections.add(tls)
        try:
            tls.settimeout(TLS_HANDSHAKE_TIMEOUT)
            tls.do_handshake()
            tls.settimeout(None)
        except (OSError, ValueError):  # ssl.SSLError is an OSError; a closed socket raises ValueError
            self.shutdown_request(tls)
            return None
        return tls

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def open_connections(self) -> int:
        """Return how many client connections are open."""
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Shut down every open client connection (keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown: SSLSocket.shutdown would drop its TLS state under
                # the feet of the thread still reading from it.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet on network errors; print anything else (it is an emulator bug)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, NETWORK_ERRORS) or self._stopping.is_set():
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Reads each request's body and passes it to :attr:`Server.answer`."""

    protocol_version = "HTTP/1.1"
    server_version = "FollowAnalyticsEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request logging."""

    def version_string(self) -> str:
        """The ``Server`` header value."""
        return self.server_version

    def do_GET(self) -> None:
        """Dispatch a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Dispatch a POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Dispatch a PUT."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Dispatch a PATCH."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Dispatch a DELETE."""
        self._dispatch()

    def _dispatch(self) -> None:
        answer = cast("Server", self.server).answer
        try:
            body = self._read_body()
            if body is None:
                return
            answer(self, body)
        except NETWORK_ERRORS:
            self.close_connection = True

    def _refuse(self, status: HTTPStatus, message: str | None = None) -> None:
        """Answer an unreadable request and close the connection."""
        self.send_error(status, message)
        self.close_connection = True

    def _read_body(self) -> bytes | None:
        """Read the whole request body; answer 400/413 and return None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self._refuse(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return None
        if length > _MAX_REQUEST_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
        return body

    def _read_chunked_body(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self._refuse(HTTPStatus.BAD_REQUEST, "Bad chunked encoding")
                return None
            if size == 0:
                while self.rfile.readline(8192).strip():  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_REQUEST_BODY:
                self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    # Response helpers -------------------------------------------------------------------------

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``payload`` as a JSON response."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, JSON_CONTENT_TYPE, headers)

    def send_failure(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Send the API's ``{"success": false, "message": ...}`` error shape."""
        self.send_json(status, {"success": False, "message": message}, headers)

    def send_not_found(self) -> None:
        """Send the API's 404."""
        self.send_failure(404, "Not found")

    def reset_connection(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER on, timeout 0)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()
