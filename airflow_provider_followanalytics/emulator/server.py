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

This module is the facade: configuration, lifecycle and records. The work is done by
``_http`` (sockets and HTTP/1.1), ``_routes`` (the API's answers), ``_params`` (the export
parameters refused), ``_faults`` (fault injection), ``_control`` (the control plane) and
``tls`` (certificates and the TLS context, when ``tls=`` asks for https).
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics.emulator import _routes
from airflow_provider_followanalytics.emulator._control import CONFIG_FIELDS, DOWNLOAD_MODES, check_setting
from airflow_provider_followanalytics.emulator._faults import FAULT_KINDS, FAULT_ROUTES, Fault, FaultQueue
from airflow_provider_followanalytics.emulator._http import Server
from airflow_provider_followanalytics.emulator._records import RecordedRequest
from airflow_provider_followanalytics.emulator._routes import _EXPORT_PATHS as _EXPORT_PATHS  # the tests use it
from airflow_provider_followanalytics.emulator._routes import EXPORT_KIND_OF_ENDPOINT, ROUTES
from airflow_provider_followanalytics.emulator._samples import make_user
from airflow_provider_followanalytics.emulator.tls import TLSFiles, make_test_certificates, server_context

if TYPE_CHECKING:
    from types import TracebackType

    from airflow_provider_followanalytics.emulator._records import Export

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
    "TLSFiles",
    "make_test_certificates",
]


class FollowAnalyticsEmulator:
    """A FollowAnalytics API emulator serving on a real socket in a daemon thread.

    Example::

        with FollowAnalyticsEmulator(ready_after=2, export_size=1 << 20) as emu:
            hook_host = emu.url  # "http://127.0.0.1:<port>"

        with FollowAnalyticsEmulator(tls=True) as emu:
            emu.url  # "https://127.0.0.1:<port>", its certificate signed by emu.tls_files.ca_file

    :param host: the address to listen on (default the IPv4 loopback).
    :param port: the port to listen on; 0 (default) picks a free one (see :attr:`url`).
    :param email: the e-mail of the one valid account.
    :param password: the password of the one valid account.
    :param ready_after: callback polls answering 202 before an export is ready (0: ready at once).
    :param export_size: bytes of every export file.
    :param seed: varies the content of the export files (see ``export_chunks``).
    :param public_url: base of the callback URLs handed out (default: :attr:`url`), e.g. the URL of a
        proxy or of another name for this host.
    :param max_recorded_requests: how many of the latest requests ``requests`` keeps (>= 1).
    :param tls: serve https: ``True`` makes a private CA and a server certificate for the loopback
        names (:func:`make_test_certificates`, in a temporary folder, at the first :meth:`start`);
        a :class:`TLSFiles` serves the given certificate. ``False`` (default): plain http.

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

    ``tls_files`` holds the certificate files served over https (None before the first
    :meth:`start` with ``tls=True``, and for plain http); clients trust its ``ca_file``.
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
        tls: bool | TLSFiles = False,
    ) -> None:
        """Configure the emulator; nothing listens before :meth:`start`."""
        if not isinstance(max_recorded_requests, int) or max_recorded_requests < 1:
            raise ValueError(f"max_recorded_requests={max_recorded_requests!r} must be an integer >= 1.")
        if not isinstance(tls, (bool, TLSFiles)):
            raise TypeError(f"tls={tls!r} must be a bool or TLSFiles")
        self.tls = tls is not False
        self.tls_files: TLSFiles | None = tls if isinstance(tls, TLSFiles) else None
        self._tls_folder: tempfile.TemporaryDirectory[str] | None = None
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
        self.user: dict[str, Any] = make_user(email)

        # Shared with the route handlers (``_routes``), which read and change them under the lock.
        self._lock = threading.RLock()
        self._faults = FaultQueue(self._lock)
        self._exports: dict[str, Export] = {}
        self._token_uses: dict[str, int] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FollowAnalyticsEmulator:
        """Bind and serve in a daemon thread; return ``self``."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            self._stopping.clear()
            context = server_context(self._certificates()) if self.tls else None
            answer = functools.partial(_routes.handle, self)
            server = Server((self.host, self.port), answer, self._stopping, context)
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

    def _certificates(self) -> TLSFiles:
        """The certificate files to serve; made into a temporary folder the first time if need be."""
        if self.tls_files is None:
            # Removed when the emulator is garbage-collected or the interpreter exits.
            self._tls_folder = tempfile.TemporaryDirectory(prefix="fa-emulator-tls-")
            self.tls_files = make_test_certificates(Path(self._tls_folder.name))
        return self.tls_files

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
        """Base URL of the running emulator, e.g. ``http://127.0.0.1:8765`` (``https://`` with TLS)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

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

        :param route: ``login``, ``export``, ``callback`` (any poll), ``download`` (a poll that would
            have answered 200 with the file), ``data_exporters`` or ``any``.
        :param kind: ``status`` (answer ``status`` with ``body``; default body: an HTML page for 5xx,
            a JSON error for 4xx), ``reset`` (TCP RST; for ``download`` after ``after_bytes``
            body bytes), ``delay`` (sleep ``delay`` seconds then answer normally; for
            ``download`` with ``after_bytes`` > 0: send those bytes, stall, close),
            ``truncate`` (download only: full Content-Length, ``after_bytes`` bytes, FIN),
            ``chunked_cut`` (download only: chunked, ``after_bytes`` bytes, no final chunk),
            ``json`` (answer 200 with the raw ``body``).
        :param count: how many matching requests the fault applies to.
        :param status: HTTP status of a ``status`` fault.
        :param retry_after: value of a ``Retry-After`` header, sent when given.
        :param body: response body for ``status`` and ``json`` faults.
        :param content_type: Content-Type for ``status`` and ``json`` faults.
        :param delay: seconds to wait for ``delay`` faults.
        :param after_bytes: body bytes sent before a download fault strikes.
        :return: the queued fault.
        """
        return self._faults.add(Fault(route, kind, count, status, retry_after, body, content_type, delay, after_bytes))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """A copy of the faults still waiting to strike."""
        return self._faults.pending()

    def state(self) -> dict[str, Any]:
        """Return the counters that ``GET /_emulator/state`` reports."""
        with self._lock:
            return {
                "login_count": self.login_count,
                "requests": dict(self._route_counts),
                "bytes_sent": list(self.bytes_sent),
                "exports": len(self._exports),
                "pending_faults": self._faults.strikes_left(),
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
            checked[name] = check_setting(name, value)
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)

    def config(self) -> dict[str, Any]:
        """Return the current configuration (without the password)."""
        with self._lock:
            return {name: getattr(self, name) for name in CONFIG_FIELDS if name != "password"}

    # Shared with the route handlers -------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        """Record ``request``; trimmed in batches (a tenth at a time) to keep appends cheap."""
        with self._lock:
            self._route_counts[request.route] = self._route_counts.get(request.route, 0) + 1
            self.requests.append(request)
            if len(self.requests) > self.max_recorded_requests + self.max_recorded_requests // 10:
                del self.requests[: len(self.requests) - self.max_recorded_requests]

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; return False when the emulator stops meanwhile."""
        return not self._stopping.wait(seconds)
