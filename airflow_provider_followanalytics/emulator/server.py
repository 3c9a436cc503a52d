"""A local stand-in for the FollowAnalytics platform API, on real sockets.

:class:`FollowAnalyticsEmulator` serves the login, export, callback and
automated-exporter endpoints described in the project's API notes, records
every request, and injects faults on demand (error statuses, connection
resets, stalls, truncated downloads, malformed envelopes), so that the
provider can be tested and benchmarked end to end without the real service.

It uses the standard library only. Configuration attributes may be changed at
any time from another thread; the request handlers read them under a lock.
Processes that run the emulator out of process (benchmarks, the demo) drive
it through the ``/_emulator/*`` control endpoints.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote

from airflow_provider_followanalytics.emulator.content import export_chunks

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = [
    "CONFIG_FIELDS",
    "DOWNLOAD_MODES",
    "EXPORT_KIND_OF_ENDPOINT",
    "FAULT_KINDS",
    "FAULT_ROUTES",
    "ROUTES",
    "Fault",
    "FollowAnalyticsEmulator",
    "RecordedRequest",
]

#: Routes a recorded request can belong to.
ROUTES: tuple[str, ...] = ("login", "export", "callback", "data_exporters", "control", "unknown")
#: Routes a fault can target. ``download`` is a callback poll that would have answered 200 with the file.
FAULT_ROUTES: tuple[str, ...] = ("login", "export", "callback", "download", "data_exporters", "any")
#: Kinds of fault.
FAULT_KINDS: tuple[str, ...] = ("status", "reset", "delay", "truncate", "chunked_cut", "json")
_DOWNLOAD_ONLY_KINDS = frozenset({"truncate", "chunked_cut"})
#: Values of :attr:`FollowAnalyticsEmulator.download_mode`.
DOWNLOAD_MODES: tuple[str, ...] = ("content-length", "chunked")
#: Attributes that ``POST /_emulator/config`` may set.
CONFIG_FIELDS: tuple[str, ...] = (
    "ready_after",
    "never_ready",
    "export_size",
    "expire_after_polls",
    "token_max_uses",
    "callback_requires_auth",
    "download_mode",
    "seed",
    "email",
    "password",
    "public_url",
)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "xls": "application/vnd.ms-excel"}
_MAX_REQUEST_BODY = 16 * 1024 * 1024

_MSG_LOGIN_FIELDS = "The request must contain the user email and password."
_MSG_BAD_LOGIN = "Invalid email or password."
_MSG_BAD_TOKEN = "Invalid or expired token."  # noqa: S105 - a message, not a secret
_MSG_BAD_EXPORT_TOKEN = "The export token is missing, invalid or the download link has expired."  # noqa: S105 - a message
_MSG_NOT_FOUND = "Not found"

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-]+$")
_FMT = r"(?:\.(?P<fmt>[A-Za-z0-9]+))?"
# (endpoint name, path pattern). Identifiers match any single segment and are validated afterwards.
_EXPORT_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("segment_devices", re.compile(rf"^(?:/api)?/segments/(?P<ident>[^/]+)/devices_export{_FMT}$")),
    ("app_devices", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/devices_export{_FMT}$")),
    ("app_events", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/events_export{_FMT}$")),
    ("performance", re.compile(rf"^/api/performance_export{_FMT}$")),
    ("user_metrics", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/analytics/download_metrics{_FMT}$")),
    ("event_analysis", re.compile(rf"^/api/events_export{_FMT}$")),
    ("event_context", re.compile(rf"^/api/event_details_export{_FMT}$")),
)
#: What each export endpoint's file holds (``export_chunks(kind=...)``).
EXPORT_KIND_OF_ENDPOINT: dict[str, str] = {
    "segment_devices": "devices",
    "app_devices": "devices",
    "app_events": "events",
    "performance": "performance",
    "user_metrics": "user_metrics",
    "event_analysis": "event_analysis",
    "event_context": "event_context",
}
_ISO_PARAMS: dict[str, tuple[str, ...]] = {
    "segment_devices": ("updated_since",),
    "app_devices": ("updated_since",),
    "app_events": ("since_date", "until_date"),
}
_DATA_EXPORTERS_PATH = re.compile(r"^/api/data_exporters(?:/(?P<ident>[^/]*))?$")

_DATA_EXPORTERS: tuple[dict[str, Any], ...] = (
    {
        "identifier": "FADATAEXP_1",
        "name": "Daily devices",
        "export_type": "devices",
        "format": "csv",
        "frequency": "daily",
        "active": True,
        "destination": {"type": "s3", "bucket": "followanalytics-exports", "prefix": "devices/"},
        "last_run_at": "2024-01-01T02:00:00Z",
    },
    {
        "identifier": "FADATAEXP_2",
        "name": "Hourly events",
        "export_type": "events",
        "format": "csv",
        "frequency": "hourly",
        "active": False,
        "destination": {"type": "sftp", "host": "sftp.example.com", "path": "/exports/events"},
        "last_run_at": None,
    },
)

# Connection resets, broken pipes, timeouts: the peer went away or the emulator is stopping.
_NETWORK_ERRORS = (OSError,)


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it.

    Attributes:
        method: HTTP method.
        path: the request target without its query string, raw as received (not normalised).
        query: query parameters (the last value wins for a repeated name).
        headers: request headers, lower-case names.
        body: the request body.
        route: ``login``, ``export``, ``callback``, ``data_exporters``, ``control`` or ``unknown``.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    route: str


@dataclasses.dataclass
class Fault:
    """A fault waiting to be injected; see :meth:`FollowAnalyticsEmulator.add_fault`."""

    route: str
    kind: str = "status"
    count: int = 1
    status: int = 503
    retry_after: int | float | str | None = None
    body: bytes | str | None = None
    content_type: str | None = None
    delay: float = 0.0
    after_bytes: int = 0


@dataclasses.dataclass
class _Export:
    token: str
    file_format: str
    endpoint: str
    params: dict[str, str]
    polls: int = 0


@dataclasses.dataclass(frozen=True)
class _Download:
    """What a ready callback poll serves (a snapshot of the configuration)."""

    size: int
    file_format: str
    seed: int
    chunked: bool
    kind: str = "devices"


class _Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that knows its emulator and its open connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096

    def __init__(self, address: tuple[str, int], emulator: FollowAnalyticsEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

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
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet on network errors; print anything else (it is an emulator bug)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, _NETWORK_ERRORS) or self.emulator._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Turns each request into a call of :meth:`FollowAnalyticsEmulator._handle`."""

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
        emulator = cast("_Server", self.server).emulator
        try:
            body = self._read_body()
            if body is None:
                return
            emulator._handle(self, body)
        except _NETWORK_ERRORS:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """Read the whole request body; answer 400/413 and return None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.send_error(HTTPStatus.BAD_REQUEST, "Bad chunked encoding")
                    self.close_connection = True
                    return None
                if size == 0:
                    while self.rfile.readline(8192).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > _MAX_REQUEST_BODY:
                    self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                    self.close_connection = True
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            self.close_connection = True
            return None
        if length > _MAX_REQUEST_BODY:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
        return body

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

    def reset_connection(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER on, timeout 0)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()


class FollowAnalyticsEmulator:
    """A FollowAnalytics API emulator serving on a real socket in a daemon thread.

    Example::

        with FollowAnalyticsEmulator(ready_after=2, export_size=1 << 20) as emu:
            hook_host = emu.url  # "http://127.0.0.1:<port>"

    Configuration attributes (change them at any time, from any thread):

    * ``email``, ``password``: the one valid account.
    * ``ready_after``: callback polls answering 202 before the export is ready (0: ready at once).
    * ``never_ready``: every callback poll answers 202.
    * ``export_size``, ``seed``: every export is ``export_chunks(export_size, format, seed, kind=...)``,
      its kind following the endpoint (:data:`EXPORT_KIND_OF_ENDPOINT`: an events export has
      event columns, a performance export daily figures per app, ...).
    * ``expire_after_polls``: the poll that brings an export's poll count to this number, and
      every later one, answers 400 (the link expired). ``None``: never expires.
    * ``token_max_uses``: an auth token answers 401 once it has been used this many times.
    * ``callback_requires_auth``: the callback URL needs a valid ``Authorization: Token``.
    * ``download_mode``: ``"content-length"`` or ``"chunked"``.
    * ``public_url``: base of the callback URLs handed out (default: :attr:`url`).

    Records (reset by :meth:`reset` unless noted):

    * ``login_count``: successful logins.
    * ``requests``: the recorded :class:`RecordedRequest` objects, in arrival order: the last
      ``max_recorded_requests`` of them (a long-running emulator must not grow without bound);
      :meth:`state` counts every request, whether still recorded or not.
    * ``bytes_sent``: body bytes written for each 200 download response, appended when it ends.
    * ``issued_tokens``: every auth token handed out (kept by :meth:`reset`).
    * ``issued_export_tokens``: every export token handed out in a callback URL (kept by :meth:`reset`).
    * ``user``: the user object the login answers with (its API keys are random secrets).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        email: str = "demo@example.com",
        password: str = "demo-password",  # noqa: S107 - the emulator's documented demo account
        ready_after: int = 0,
        export_size: int = 4096,
        seed: int = 0,
        public_url: str | None = None,
        max_recorded_requests: int = 10_000,
    ) -> None:
        """Configure the emulator; nothing listens before :meth:`start`."""
        if not isinstance(max_recorded_requests, int) or max_recorded_requests < 1:
            raise ValueError(f"max_recorded_requests={max_recorded_requests!r} must be an integer >= 1.")
        self.host = host
        self.port = port
        self.email = email
        self.password = password
        self.ready_after = ready_after
        self.never_ready = False
        self.export_size = export_size
        self.seed = seed
        self.expire_after_polls: int | None = None
        self.token_max_uses: int | None = None
        self.callback_requires_auth = True
        self.download_mode = "content-length"
        self.public_url = public_url

        self.login_count = 0
        self.requests: list[RecordedRequest] = []
        self.max_recorded_requests = max_recorded_requests
        self._route_counts: dict[str, int] = dict.fromkeys(ROUTES, 0)
        self.bytes_sent: list[int] = []
        self.issued_tokens: list[str] = []
        self.issued_export_tokens: list[str] = []
        self.user: dict[str, Any] = _make_user(email)

        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._exports: dict[str, _Export] = {}
        self._token_uses: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FollowAnalyticsEmulator:
        """Bind and serve in a daemon thread; return ``self``."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            self._stopping.clear()
            server = _Server((self.host, self.port), self)
            self._server = server
            self.port = server.server_port
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"followanalytics-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: close the listening socket and every open connection, join the thread."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        deadline = time.monotonic() + timeout
        server.close_connections()
        while server.open_connections() and time.monotonic() < deadline:
            time.sleep(0.005)
            server.close_connections()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FollowAnalyticsEmulator:
        """Start the emulator."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the emulator."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the emulator is serving."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL of the running emulator, e.g. ``http://127.0.0.1:8765``."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def open_connections(self) -> int:
        """Return how many client connections are open right now (keep-alive ones included)."""
        server = self._server
        return 0 if server is None else server.open_connections()

    # Records and faults ------------------------------------------------------------------------

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """Return the recorded requests of one route."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def reset(self) -> None:
        """Clear requests, faults, bytes_sent, login_count and exports; keep account, config and tokens."""
        with self._lock:
            self.requests.clear()
            self._route_counts = dict.fromkeys(ROUTES, 0)
            self.bytes_sent.clear()
            self.login_count = 0
            self._faults.clear()
            self._exports.clear()

    def add_fault(
        self,
        route: str,
        kind: str = "status",
        count: int = 1,
        status: int = 503,
        retry_after: int | float | str | None = None,
        body: bytes | str | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
        after_bytes: int = 0,
    ) -> Fault:
        """Inject a fault into the next ``count`` requests of ``route``.

        Faults are consumed in the order they were added: a request takes the first pending
        fault whose route matches it (``any`` matches every non-control request).

        Args:
            route: ``login``, ``export``, ``callback`` (any poll), ``download`` (a poll that would
                have answered 200 with the file), ``data_exporters`` or ``any``.
            kind: ``status`` (answer ``status`` with ``body``; default body: an HTML page for 5xx,
                a JSON error for 4xx), ``reset`` (TCP RST; for ``download`` after ``after_bytes``
                body bytes), ``delay`` (sleep ``delay`` seconds then answer normally; for
                ``download`` with ``after_bytes`` > 0: send those bytes, stall, close),
                ``truncate`` (download only: full Content-Length, ``after_bytes`` bytes, FIN),
                ``chunked_cut`` (download only: chunked, ``after_bytes`` bytes, no final chunk),
                ``json`` (answer 200 with the raw ``body``).
            count: how many matching requests the fault applies to.
            status: HTTP status of a ``status`` fault.
            retry_after: value of a ``Retry-After`` header, sent when given.
            body: response body for ``status`` and ``json`` faults.
            content_type: Content-Type for ``status`` and ``json`` faults.
            delay: seconds to wait for ``delay`` faults.
            after_bytes: body bytes sent before a download fault strikes.
        """
        if route not in FAULT_ROUTES:
            raise ValueError(f"unknown fault route {route!r}; expected one of {FAULT_ROUTES}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind in _DOWNLOAD_ONLY_KINDS and route != "download":
            raise ValueError(f"fault kind {kind!r} applies to the 'download' route only")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        if delay < 0 or after_bytes < 0:
            raise ValueError("delay and after_bytes must be >= 0")
        fault = Fault(route, kind, count, status, retry_after, body, content_type, float(delay), after_bytes)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """A copy of the faults still waiting to strike."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    def state(self) -> dict[str, Any]:
        """Return the counters that ``GET /_emulator/state`` reports."""
        with self._lock:
            return {
                "login_count": self.login_count,
                "requests": dict(self._route_counts),
                "bytes_sent": list(self.bytes_sent),
                "exports": len(self._exports),
                "pending_faults": sum(f.count for f in self._faults),
            }

    def issued_secrets(self) -> dict[str, Any]:
        """Every secret a client of this emulator must never log (``GET /_emulator/secrets``).

        For tests that scan what other processes wrote: the password, the auth tokens and export
        tokens handed out, and the API keys of the login answer's user object.
        """
        with self._lock:
            keys = [entity[name] for entity in self.user["entities"] for name in ("qa_api_key", "prod_api_key")]
            return {
                "password": self.password,
                "auth_tokens": list(self.issued_tokens),
                "export_tokens": list(self.issued_export_tokens),
                "api_keys": keys,
            }

    def configure(self, **settings: Any) -> None:
        """Set configuration attributes (names in :data:`CONFIG_FIELDS`), type-checked."""
        checked: dict[str, Any] = {}
        for name, value in settings.items():
            checked[name] = _check_setting(name, value)
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)

    def config(self) -> dict[str, Any]:
        """Return the current configuration (without the password)."""
        with self._lock:
            return {name: getattr(self, name) for name in CONFIG_FIELDS if name != "password"}

    # Request handling ----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        # Called with the lock held. Trimmed in batches (a tenth at a time) to keep appends cheap.
        self._route_counts[request.route] = self._route_counts.get(request.route, 0) + 1
        self.requests.append(request)
        if len(self.requests) > self.max_recorded_requests + self.max_recorded_requests // 10:
            del self.requests[: len(self.requests) - self.max_recorded_requests]

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.route == route or (fault.route == "any" and route != "download"):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[index]
                    return dataclasses.replace(fault)
        return None

    def _handle(self, handler: _Handler, body: bytes) -> None:
        raw_path, _, query_string = handler.path.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        method = handler.command
        route, endpoint, match = _classify(raw_path)
        request = RecordedRequest(
            method=method,
            path=raw_path,
            query=query,
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            route=route,
        )
        with self._lock:
            self._record(request)

        if route == "control":
            self._control(handler, request)
            return
        fault = self._take_fault(route)
        if fault is not None and fault.kind != "delay":
            self._apply_fault(handler, fault)
            return
        if fault is not None and not self._sleep(fault.delay):
            handler.close_connection = True
            return

        if route == "unknown":
            handler.send_json(404, {"success": False, "message": _MSG_NOT_FOUND})
        elif route == "login":
            if method != "POST":
                self._method_not_allowed(handler, "POST")
            else:
                self._login(handler, body)
        elif method != "GET":
            self._method_not_allowed(handler, "GET")
        elif route == "callback":
            self._callback(handler, request)
        elif not self._authorize(request):
            handler.send_json(401, {"success": False, "message": _MSG_BAD_TOKEN})
        elif route == "data_exporters":
            self._data_exporters(handler, match)
        else:
            assert match is not None
            self._export(handler, request, endpoint, match)

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; return False when the emulator stops meanwhile."""
        return not self._stopping.wait(seconds)

    @staticmethod
    def _method_not_allowed(handler: _Handler, allowed: str) -> None:
        handler.send_json(405, {"success": False, "message": "Method not allowed"}, {"Allow": allowed})

    def _authorize(self, request: RecordedRequest) -> bool:
        """Check ``Authorization: Token <t>`` and count the use against ``token_max_uses``."""
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "token" or not token:
            return False
        with self._lock:
            uses = self._token_uses.get(token)
            if uses is None:
                return False
            uses += 1
            self._token_uses[token] = uses
            return self.token_max_uses is None or uses <= self.token_max_uses

    def _login(self, handler: _Handler, body: bytes) -> None:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        email = payload.get("email") if isinstance(payload, dict) else None
        password = payload.get("password") if isinstance(payload, dict) else None
        if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
            handler.send_json(400, {"success": False, "status": 400, "error_message": _MSG_LOGIN_FIELDS})
            return
        with self._lock:
            ok = secrets.compare_digest(email.encode(), self.email.encode()) and secrets.compare_digest(
                password.encode(), self.password.encode()
            )
            if ok:
                token = secrets.token_urlsafe(24)
                self._token_uses[token] = 0
                self.issued_tokens.append(token)
                self.login_count += 1
                self.user["email"] = self.email
                user = copy.deepcopy(self.user)
        if not ok:
            handler.send_json(401, {"success": False, "message": _MSG_BAD_LOGIN})
            return
        handler.send_json(200, {"success": True, "result": {"auth_token": token, "user": user}})

    def _data_exporters(self, handler: _Handler, match: re.Match[str] | None) -> None:
        ident = match.group("ident") if match is not None else None
        if ident is None:
            handler.send_json(200, {"success": True, "result": list(_DATA_EXPORTERS)})
            return
        for exporter in _DATA_EXPORTERS:
            if exporter["identifier"] == unquote(ident):
                handler.send_json(200, {"success": True, "result": exporter})
                return
        handler.send_json(404, {"success": False, "message": _MSG_NOT_FOUND})

    def _export(self, handler: _Handler, request: RecordedRequest, endpoint: str, match: re.Match[str]) -> None:
        file_format = (match.group("fmt") or "xls").lower()
        ident = match.groupdict().get("ident")
        if file_format not in _CONTENT_TYPES or (ident is not None and not _IDENTIFIER.match(unquote(ident))):
            handler.send_json(404, {"success": False, "message": _MSG_NOT_FOUND})
            return
        error = _validate_export_params(endpoint, request.query)
        if error is not None:
            handler.send_json(400, {"success": False, "status": 400, "error_message": error})
            return
        skip_email = request.query.get("skip_email", "false").strip().lower() in ("true", "1")
        with self._lock:
            if not skip_email:
                message = (
                    f"Your report is being generated and will be sent to the email {self.email} when it is completed"
                )
                result: Any = message
            else:
                token = secrets.token_urlsafe(16)
                self.issued_export_tokens.append(token)
                params = dict(request.query)
                if ident is not None:
                    params["_identifier"] = unquote(ident)
                self._exports[token] = _Export(token, file_format, endpoint, params)
                base = (self.public_url or self.url).rstrip("/")
                result = {"callback": f"{base}/api/exports/download_url?export_token={token}"}
        handler.send_json(200, {"success": True, "result": result})

    def _callback(self, handler: _Handler, request: RecordedRequest) -> None:
        with self._lock:
            requires_auth = self.callback_requires_auth
        if requires_auth and not self._authorize(request):
            handler.send_json(401, {"success": False, "message": _MSG_BAD_TOKEN})
            return
        expired = {"success": False, "message": _MSG_BAD_EXPORT_TOKEN}
        download: _Download | None = None
        with self._lock:
            export = self._exports.get(request.query.get("export_token", ""))
            if export is None:
                status = 400
            else:
                export.polls += 1
                if self.expire_after_polls is not None and export.polls >= self.expire_after_polls:
                    status = 400
                elif self.never_ready or export.polls <= self.ready_after:
                    status = 202
                else:
                    status = 200
                    download = _Download(
                        self.export_size,
                        export.file_format,
                        self.seed,
                        self.download_mode == "chunked",
                        EXPORT_KIND_OF_ENDPOINT[export.endpoint],
                    )
        if status == 400:
            handler.send_json(400, expired)
            return
        if status == 202 or download is None:
            pending = {"status": "pending", "message": "Your export is being generated."}
            handler.send_json(202, {"success": True, "result": pending})
            return
        fault = self._take_fault("download")
        if fault is None:
            self._send_download(handler, download)
        elif fault.kind == "delay" and fault.after_bytes == 0:
            if self._sleep(fault.delay):
                self._send_download(handler, download)
            else:
                handler.close_connection = True
        elif fault.kind in ("status", "json") or (fault.kind == "reset" and fault.after_bytes == 0):
            self._apply_fault(handler, fault)
        else:
            self._send_download(handler, download, fault)

    def _send_download(self, handler: _Handler, download: _Download, fault: Fault | None = None) -> None:
        """Stream the export file, or its beginning when a download fault strikes."""
        chunked = download.chunked
        limit: int | None = None
        if fault is not None:
            limit = min(fault.after_bytes, download.size)
            chunked = True if fault.kind == "chunked_cut" else chunked and fault.kind != "truncate"
        extension = download.file_format
        handler.send_response(200)
        handler.send_header("Content-Type", _CONTENT_TYPES[extension])
        handler.send_header("Content-Disposition", f'attachment; filename="export.{extension}"')
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(download.size))
        sent = 0
        failed = False
        try:
            handler.end_headers()
            for chunk in export_chunks(download.size, download.file_format, download.seed, kind=download.kind):
                if limit is not None and sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                if not chunk:
                    break
                if chunked:
                    handler.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    handler.wfile.write(chunk)
                sent += len(chunk)
                if self._stopping.is_set():
                    raise ConnectionAbortedError("emulator stopping")
            if fault is None and chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except _NETWORK_ERRORS:
            failed = True
            handler.close_connection = True
        finally:
            with self._lock:
                self.bytes_sent.append(sent)
        if fault is None or failed:
            return
        if fault.kind == "reset":
            handler.reset_connection()
            return
        if fault.kind == "delay":
            self._sleep(fault.delay)
        handler.close_connection = True  # FIN: truncate, chunked_cut, and delay after its stall

    def _apply_fault(self, handler: _Handler, fault: Fault) -> None:
        """Answer with a ``status``, ``json`` or ``reset`` fault."""
        if fault.kind == "reset":
            handler.reset_connection()
            return
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.kind == "json":
            body = b"" if fault.body is None else _as_bytes(fault.body)
            handler.send_bytes(200, body, fault.content_type or JSON_CONTENT_TYPE, headers)
            return
        status = fault.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        if fault.body is not None:
            body = _as_bytes(fault.body)
        elif status >= 500:
            body = (
                f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1></body></html>"
            ).encode()
        else:
            body = json.dumps({"success": False, "message": phrase}).encode()
        default_type = "text/html; charset=utf-8" if status >= 500 else JSON_CONTENT_TYPE
        handler.send_bytes(status, body, fault.content_type or default_type, headers)

    # Control endpoints -------------------------------------------------------------------------

    def _control(self, handler: _Handler, request: RecordedRequest) -> None:
        action = request.path[len("/_emulator/") :].rstrip("/")
        expected_method = {"state": "GET", "secrets": "GET", "config": "POST", "faults": "POST", "reset": "POST"}.get(
            action
        )
        if expected_method is None:
            handler.send_json(404, {"success": False, "message": _MSG_NOT_FOUND})
            return
        if request.method != expected_method and not (action == "config" and request.method == "GET"):
            self._method_not_allowed(handler, expected_method)
            return
        if action == "state":
            handler.send_json(200, self.state())
            return
        if action == "secrets":
            handler.send_json(200, self.issued_secrets())
            return
        if action == "reset":
            self.reset()
            handler.send_json(200, {"success": True, "result": "reset"})
            return
        if action == "config" and request.method == "GET":
            handler.send_json(200, {"success": True, "result": self.config()})
            return
        try:
            payload = json.loads(request.body.decode("utf-8") or "{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            if action == "config":
                unknown = sorted(set(payload) - set(CONFIG_FIELDS))
                if unknown:
                    raise ValueError(f"unknown settings: {', '.join(unknown)}")
                self.configure(**payload)
                result: Any = self.config()
            else:
                fault = self.add_fault(**payload)
                result = {k: v for k, v in dataclasses.asdict(fault).items() if not isinstance(v, bytes)}
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            handler.send_json(400, {"success": False, "message": str(exc)})
            return
        handler.send_json(200, {"success": True, "result": result})


# Helpers ---------------------------------------------------------------------------------------


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _make_user(email: str) -> dict[str, Any]:
    """Build a user object shaped like the API overview's, with freshly generated API keys."""
    return {
        "id": 42,
        "uid": "4422",
        "first_name": "Demo",
        "last_name": "User",
        "full_name": "Demo User",
        "email": email,
        "entities": [
            {
                "id": 24,
                "name": "DemoEntity_1",
                "description": "Emulated entity",
                "identifier": "FAENTITY_demo001",
                "active": True,
                "qa_api_key": secrets.token_urlsafe(16),
                "prod_api_key": secrets.token_urlsafe(16),
                "data_retention_in_months": 18,
            },
            {
                "id": 25,
                "name": "DemoEntity_2",
                "description": "Emulated entity",
                "identifier": "FAENTITY_demo002",
                "active": True,
                "qa_api_key": secrets.token_urlsafe(16),
                "prod_api_key": secrets.token_urlsafe(16),
                "data_retention_in_months": 18,
            },
        ],
        "enable": {
            name: True
            for name in (
                "apps",
                "campaign_view",
                "campaign_draft",
                "campaign_publish",
                "segments_view",
                "segments_manage",
                "usage_analytics_view",
                "downloads",
                "crashes_view",
                "gdpr_data_manage",
                "api_keys_manage",
            )
        },
        "admin": True,
        "superadmin": False,
        "prefered_entity": {"id": 24, "name": "DemoEntity_1"},
    }


def _classify(raw_path: str) -> tuple[str, str, re.Match[str] | None]:
    """Return ``(route, export endpoint name, path match)`` for a raw request path."""
    if raw_path.startswith("/_emulator/"):
        return "control", "", None
    if raw_path == "/api/login":
        return "login", "", None
    if raw_path == "/api/exports/download_url":
        return "callback", "", None
    match = _DATA_EXPORTERS_PATH.match(raw_path)
    if match is not None:
        return "data_exporters", "", match
    for endpoint, pattern in _EXPORT_PATHS:
        match = pattern.match(raw_path)
        if match is not None:
            return "export", endpoint, match
    return "unknown", "", None


def _parse_day(value: str, name: str) -> tuple[int | None, str | None]:
    """Parse an ``sd``/``ed`` value: integer seconds at exactly midnight UTC."""
    try:
        seconds = int(value.strip())
    except ValueError:
        return None, f"Invalid {name}: {value!r} is not a timestamp in seconds since epoch"
    if seconds % 86400:
        return None, f"Invalid {name}: {seconds} is not midnight UTC"
    return seconds, None


def _validate_period(query: dict[str, str], required: bool) -> str | None:
    sd, ed = query.get("sd", ""), query.get("ed", "")
    if not sd and not ed and not required:
        return None
    if not sd:
        return "Missing start date"
    if not ed:
        return "Missing end date"
    start, error = _parse_day(sd, "start date")
    if error is not None:
        return error
    end, error = _parse_day(ed, "end date")
    if error is not None:
        return error
    assert start is not None
    assert end is not None
    if end <= start:
        return f"Invalid period: end date {end} must be after start date {start}"
    return None


def _validate_export_params(endpoint: str, query: dict[str, str]) -> str | None:
    """Return the error message of an invalid export request, None when it is valid."""
    for name in _ISO_PARAMS.get(endpoint, ()):
        value = query.get(name)
        if value is None:
            continue
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return f"Invalid {name}: {value!r} is not an ISO 8601 date"
    if endpoint == "performance":
        apps = [a.strip() for a in query.get("apps", "").split(",") if a.strip()]
        if not apps:
            return "Missing apps"
        for app in apps:
            if not _IDENTIFIER.match(app):
                return f"Invalid app identifier: {app!r}"
        return _validate_period(query, required=True)
    if endpoint == "user_metrics":
        return _validate_period(query, required=True)
    if endpoint in ("event_analysis", "event_context"):
        app = query.get("app", "").strip()
        if not app:
            return "Missing app"
        if not _IDENTIFIER.match(app):
            return f"Invalid app identifier: {app!r}"
        if endpoint == "event_context":
            event_id = query.get("event_id", "").strip()
            if not event_id:
                return "Missing event_id"
            try:
                int(event_id)
            except ValueError:
                return f"Invalid event_id: {event_id!r} is not an integer"
        return _validate_period(query, required=False)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SETTING_TYPES: dict[str, Callable[[Any], bool]] = {
    "ready_after": lambda v: _is_int(v) and v >= 0,
    "never_ready": lambda v: isinstance(v, bool),
    "export_size": lambda v: _is_int(v) and v >= 0,
    "expire_after_polls": lambda v: v is None or (_is_int(v) and v >= 1),
    "token_max_uses": lambda v: v is None or (_is_int(v) and v >= 0),
    "callback_requires_auth": lambda v: isinstance(v, bool),
    "download_mode": lambda v: v in DOWNLOAD_MODES,
    "seed": _is_int,
    "email": lambda v: isinstance(v, str) and bool(v),
    "password": lambda v: isinstance(v, str) and bool(v),
    "public_url": lambda v: v is None or (isinstance(v, str) and v.startswith(("http://", "https://"))),
}


def _check_setting(name: str, value: Any) -> Any:
    check = _SETTING_TYPES.get(name)
    if check is None:
        raise ValueError(f"unknown setting {name!r}; expected one of {CONFIG_FIELDS}")
    if not check(value):
        raise ValueError(f"invalid value for {name}: {value!r}")
    return value
