"""FollowAnalyticsHook: one authenticated client for every FollowAnalytics API.

The hook logs in with the connection's e-mail and password (``POST /api/login``), keeps
the auth token and sends ``Authorization: Token <token>`` on every later request. It
unwraps the ``{"success": ..., "result": ...}`` envelope, understands both error shapes,
retries transient failures (network errors, timeouts, 429, 5xx) with exponential backoff
and jitter, honours ``Retry-After``, and logs in again once when the token expires.

``requests`` and ``aiohttp`` are imported inside the methods that use them, so a DAG file
that imports this provider's operators does not pay for them at parse time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import threading
import time
import weakref
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_followanalytics import CONN_TYPE, __version__
from airflow_provider_followanalytics._api import (
    CALLBACK_REQUEST,
    ConnectionSettings,
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    raise_for_callback,
    settings_from_connection,
    tls_error,
    token_from_login_response,
    unwrap_envelope,
    validate_endpoint,
)
from airflow_provider_followanalytics._compat import BaseHook, aget_connection, mask_secret
from airflow_provider_followanalytics._sessions import LoopSessions
from airflow_provider_followanalytics._urls import (
    export_token_of,
    is_insecure_remote,
    redact_text,
    redact_url,
    validate_callback_url,
)
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsAuthError,
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsExportNotReadyError,
    FollowAnalyticsRetryableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import aiohttp
    import requests

FILE_FORMATS = ("csv", "xls")
USER_AGENT = f"airflow-provider-followanalytics/{__version__}"
DOWNLOAD_CHUNK_SIZE = 1 << 20
#: test_connection() must answer within seconds (the UI's Test button): one attempt, this timeout at most.
TEST_CONNECTION_TIMEOUT = 5.0


def _keep_headers(request: Any) -> Any:
    """A no-op ``requests`` auth: the hook sets ``Authorization`` itself."""
    return request


_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


def env_proxy_for(url: str) -> str | None:
    """The ``HTTPS_PROXY`` / ``HTTP_PROXY`` that applies to ``url`` (honouring ``NO_PROXY``), if any."""
    import os

    # Reading the whole environment costs ~0.5 ms; thousands of triggers ask the same question.
    return _proxy_for(url, tuple(os.environ.get(name) for name in _PROXY_VARIABLES))


@functools.lru_cache(maxsize=64)
def _proxy_for(url: str, _environment: tuple[str | None, ...]) -> str | None:
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


#: Bodies of "not ready" answers up to this size are read so that their connection can be reused.
_SMALL_BODY = 64 * 1024
# The aiohttp session of each event loop, shared by its hooks (see _sessions.py).
_LOOP_SESSIONS = LoopSessions(USER_AGENT)
# Async logins shared by every hook of one account in this process (see FollowAnalyticsHook.alogin).
_SHARED_TOKENS: dict[tuple[str, str, str], str] = {}
_LOGIN_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _account_key(settings: ConnectionSettings) -> tuple[str, str, str]:
    digest = hashlib.sha256(settings.password.encode()).hexdigest()  # never keep the password itself
    return (settings.base_url, settings.email, digest)


def _login_lock(key: tuple[str, str, str]) -> asyncio.Lock:
    locks = _LOGIN_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(key, asyncio.Lock())


class _RedactExportTokens(logging.Filter):
    """urllib3 logs request URLs at DEBUG level; hide export tokens in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact_url(arg) if isinstance(arg, str) else arg for arg in args)
        return True


def _redact_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactExportTokens) for f in logger.filters):
        logger.addFilter(_RedactExportTokens())


class FollowAnalyticsHook(BaseHook):
    """Talk to any FollowAnalytics API with the account of an Airflow connection.

    The connection (type ``followanalytics``) holds the account e-mail as *Login*, its
    *Password*, and optionally the API base URL as *Host* (default
    ``https://api.follow-apps.com``; ``http://`` only for loopback hosts such as the local
    emulator). Its extras may set ``timeout``, ``max_retries`` and ``retry_delay``, ``scheme``
    (``http`` for a host given without scheme, as in the URI form
    ``followanalytics://...@127.0.0.1:8765?scheme=http``) and ``allow_insecure_http`` (``true`` to
    accept plain http to a host that is not loopback, such as an emulator in a Docker sidecar;
    every hook then logs a warning, and credentials still go to that host only).

    One hook logs in once and reuses the token for every call, from any number of threads.
    On a 401 (or a 403 to a request that carried a token) it logs in again once and replays
    the request once.

    .. code-block:: python

        hook = FollowAnalyticsHook()
        exporters = hook.run("GET", "/api/data_exporters")
        url = hook.start_export("/api/apps/FAAPPLI_123/devices_export", {"fields": "device_id"})

    :param followanalytics_conn_id: the Airflow connection to use.
    :param timeout: seconds for the connect and read timeouts of each request
        (default: connection extra ``timeout``, else 60).
    :param max_retries: retries on network errors, timeouts, 429 and 5xx
        (default: connection extra ``max_retries``, else 5).
    :param retry_delay: base of the exponential backoff in seconds
        (default: connection extra ``retry_delay``, else 1.0).
    :param max_retry_delay: longest single wait between retries, and the longest
        ``Retry-After`` honoured before giving up (default 60).
    """

    conn_name_attr = "followanalytics_conn_id"
    default_conn_name = "followanalytics_default"
    conn_type = CONN_TYPE
    hook_name = "FollowAnalytics"

    def __init__(
        self,
        followanalytics_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        max_retry_delay: float | None = None,
    ) -> None:
        super().__init__()
        self.followanalytics_conn_id = followanalytics_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "retry_delay": retry_delay,
            "max_retry_delay": max_retry_delay,
        }
        self._settings: ConnectionSettings | None = None
        self._token: str | None = None
        self._past_tokens: list[str] = []
        self._token_lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._async_session: aiohttp.ClientSession | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._checked_callback: tuple[str, str, str] | None = None  # (callback URL, base URL, validated URL)
        self._async_proxy: str | None = None  # callback URLs share the base URL's origin
        self.login_count = 0

    # ------------------------------------------------------------------ connection form (Airflow 2)
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the Airflow 2 connection form (Airflow 3 reads provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        return {
            "timeout": StringField(lazy_gettext("Request timeout (seconds)"), widget=BS3TextFieldWidget()),
            "max_retries": IntegerField(
                lazy_gettext("Retries on network errors, 429 and 5xx"),
                validators=[Optional(), NumberRange(min=0)],
                widget=BS3TextFieldWidget(),
            ),
            "retry_delay": StringField(lazy_gettext("First retry delay (seconds)"), widget=BS3TextFieldWidget()),
            "allow_insecure_http": BooleanField(
                lazy_gettext("Allow plain http to a non-loopback host (local emulator only)"), default=False
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide fields of the Airflow 2 connection form.

        The same behaviour as provider info's ``ui-field-behaviour`` (what Airflow 3 reads), in
        the spelling Airflow 2 validates a hook's answer against (``hidden_fields``, not
        ``hidden-fields``; it drops the whole behaviour otherwise).
        """
        from airflow_provider_followanalytics import get_provider_info

        behaviour: dict[str, Any] = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    # ------------------------------------------------------------------ settings and token
    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (looked up once, synchronously)."""
        if self._settings is None:
            self._settings = self._resolve(self.get_connection(self.followanalytics_conn_id))
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """The connection settings, looked up without blocking the event loop."""
        if self._settings is None:
            self._settings = self._resolve(await aget_connection(self.followanalytics_conn_id))
        return self._settings

    def _resolve(self, conn: Any) -> ConnectionSettings:
        settings = settings_from_connection(conn, **self._overrides)
        if is_insecure_remote(settings.base_url):
            # Every hook says it: the opt-in must never go unnoticed in a task log.
            self.log.warning(
                "INSECURE: connection %r sends the FollowAnalytics password and auth token in clear text "
                "over plain http to %s (extra allow_insecure_http is true). Use this only for a local "
                "emulator, never for the real API.",
                self.followanalytics_conn_id,
                settings.base_url,
            )
        return settings

    def _tls_failure(self, what: str, exc: BaseException) -> FollowAnalyticsConfigError:
        reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets())
        return tls_error(what, self.settings.base_url, reason)

    @property
    def base_url(self) -> str:
        """The API base URL of the connection."""
        return self.settings.base_url

    def _headers(self, token: str | None, *, has_body: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if has_body:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Token {token}"
        return headers

    def _secrets(self) -> tuple[str | None, ...]:
        # Every token this hook held: a server may echo an expired one in its error text.
        password = self._settings.password if self._settings else None
        return (password, *self._past_tokens)

    def _remember_token(self, token: str) -> str:
        self._past_tokens.append(token)
        self._token = token
        return token

    def _forget_token(self, failed_token: str | None) -> None:
        # Only the first of many threads that saw the same expired token triggers a new login.
        with self._token_lock:
            if self._token == failed_token:
                self._token = None

    # ------------------------------------------------------------------ sync HTTP
    def get_session(self) -> requests.Session:
        """The hook's ``requests`` session (connection pooling; credentials are not stored in it)."""
        with self._session_lock:  # one session (one connection pool) per hook, even across threads
            if self._session is None:
                import requests
                from requests.adapters import HTTPAdapter

                _redact_urllib3_logs()
                session = requests.Session()
                # Keep trust_env for proxies and CA bundles, but a truthy session.auth stops requests
                # from replacing our Authorization header with ~/.netrc credentials.
                session.auth = _keep_headers
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
            return self._session

    def close(self) -> None:
        """Close the sync session (the async one is closed by :meth:`aclose`)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def get_conn(self) -> requests.Session:
        """Return the ``requests`` session, logged in (Airflow's usual hook entry point)."""
        self.login()
        return self.get_session()

    def login(self) -> str:
        """Log in if no token is held, and return the token. Thread-safe: one login per hook."""
        with self._token_lock:
            if self._token is None:
                return self._remember_token(self._login_request())
            return self._token

    def _login_request(self) -> str:
        settings = self.settings
        response = self._send(
            "POST",
            f"{settings.base_url}/api/login",
            what="POST /api/login",
            json={"email": settings.email, "password": settings.password},
            authenticate=False,
        )
        try:
            text = response.text
        finally:
            response.close()
        token = token_from_login_response(
            response.status_code,
            response.headers.get("Content-Type", ""),
            text,
            settings.email,
            secrets=self._secrets(),
        )
        self.login_count += 1
        self.log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        return token

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        stream: bool = False,
        authenticate: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request with retries and re-login; return the final response (any status)."""
        import requests

        settings = self.settings
        session = self.get_session()
        attempt = 0
        relogged = False
        while True:
            token = self.login() if authenticate else None
            request_headers = self._headers(token, has_body=json is not None)
            request_headers.update(headers or {})
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=request_headers,
                    timeout=(settings.timeout, settings.timeout),
                    stream=stream,
                    allow_redirects=False,  # never carry the token to wherever a redirect points
                )
            except requests.exceptions.SSLError as exc:  # the same handshake would fail again
                raise self._tls_failure(what, exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets())
                if attempt >= settings.max_retries:
                    raise FollowAnalyticsRetryableError(
                        f"FollowAnalytics {what} failed after {attempt + 1} attempt(s): {reason}"
                    ) from None
                delay = backoff_delay(attempt, settings.retry_delay, settings.max_retry_delay)
                self.log.warning(
                    "FollowAnalytics %s: %s; retry %d/%d in %.1fs",
                    what,
                    type(exc).__name__,
                    attempt + 1,
                    settings.max_retries,
                    delay,
                )
                time.sleep(delay)
                attempt += 1
                continue

            status = response.status_code
            if authenticate and status in (401, 403) and not relogged:
                response.close()
                self.log.info("FollowAnalytics %s answered %d: logging in again once", what, status)
                self._forget_token(token)
                relogged = True
                continue
            if is_retryable_status(status) and attempt < settings.max_retries:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                if retry_after is not None and retry_after > settings.max_retry_delay:
                    raise FollowAnalyticsRetryableError(
                        f"FollowAnalytics {what} failed: HTTP {status} with Retry-After {retry_after:.0f}s, "
                        f"longer than max_retry_delay={settings.max_retry_delay:.0f}s",
                        http_status=status,
                        retry_after=retry_after,
                    )
                delay = backoff_delay(attempt, settings.retry_delay, settings.max_retry_delay, retry_after)
                self.log.warning(
                    "FollowAnalytics %s answered HTTP %d; retry %d/%d in %.1fs",
                    what,
                    status,
                    attempt + 1,
                    settings.max_retries,
                    delay,
                )
                time.sleep(delay)
                attempt += 1
                continue
            if 300 <= status < 400:
                location = redact_url(response.headers.get("Location", "?"))
                response.close()
                raise FollowAnalyticsAPIError(
                    f"FollowAnalytics {what} answered a redirect (HTTP {status}) to {location}; "
                    "redirects are not followed so credentials stay on the connection's host.",
                    http_status=status,
                )
            return response

    def run(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Call any FollowAnalytics API and return the envelope's ``result``.

        Login, headers, retries, re-login and error handling are done for you.

        :param method: HTTP method, e.g. ``"GET"`` or ``"POST"``.
        :param endpoint: API path, e.g. ``"/api/data_exporters"``; query parameters go in ``params``.
        :param params: query string parameters.
        :param json: JSON body (sent with ``Content-Type: application/json``).
        :return: the ``result`` of the response envelope (object, list or string).
        :raises FollowAnalyticsAPIError: on an error status or an unreadable envelope.
        """
        method = method.upper()
        endpoint = validate_endpoint(endpoint)
        what = f"{method} {endpoint}"
        response = self._send(method, f"{self.base_url}{endpoint}", what=what, params=params, json=json)
        try:
            text = response.text
        finally:
            response.close()
        content_type = response.headers.get("Content-Type", "")
        return unwrap_envelope(response.status_code, content_type, text, what, self._secrets())

    # ------------------------------------------------------------------ exports
    def start_export(
        self,
        endpoint: str,
        params: dict[str, Any] | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
    ) -> str:
        """Start an export and return its callback URL (or the server's message when e-mailed).

        :param endpoint: export path without format suffix, e.g. ``"/api/performance_export"``.
        :param params: query parameters of the export.
        :param file_format: ``"csv"`` (UTF-8) or ``"xls"``; the suffix is always sent.
        :param skip_email: True to get a callback URL to poll; False to have the file e-mailed.
        :return: the callback URL when ``skip_email``, else the server's confirmation sentence.
        """
        if file_format not in FILE_FORMATS:
            raise FollowAnalyticsConfigError(f"file_format={file_format!r} is not supported; expected 'csv' or 'xls'.")
        endpoint = validate_endpoint(endpoint)
        for suffix in FILE_FORMATS:
            if endpoint.endswith(f".{suffix}"):
                raise FollowAnalyticsConfigError(
                    f"endpoint {endpoint!r} already ends with '.{suffix}'; give the path without suffix "
                    "and choose the format with file_format."
                )
        query = {key: value for key, value in (params or {}).items() if value is not None}
        query["skip_email"] = "true" if skip_email else "false"
        result = self.run("GET", f"{endpoint}.{file_format}", params=query)
        if not skip_email:
            return result if isinstance(result, str) else str(result)
        callback = result.get("callback") if isinstance(result, dict) else None
        if not isinstance(callback, str) or not callback:
            raise FollowAnalyticsAPIError(
                f"FollowAnalytics GET {endpoint}.{file_format} answered without a callback URL "
                f"(result of type {type(result).__name__}); expected result.callback with skip_email=true.",
                http_status=200,
            )
        mask_secret(export_token_of(callback))
        return validate_callback_url(callback, self.base_url)

    def check_callback_url(self, callback_url: object) -> str:
        """Validate a callback URL against the connection (host, scheme, token) and mask its token."""
        url = validate_callback_url(callback_url, self.base_url)
        mask_secret(export_token_of(url))
        return url

    def get_export_status(self, callback_url: str) -> str:
        """Ask a callback URL whether its export is ready, without reading the file.

        :param callback_url: URL returned by :meth:`start_export`.
        :return: ``"ready"`` (200) or ``"pending"`` (202).
        :raises FollowAnalyticsExportExpiredError: on 400 (missing, invalid or expired link).
        """
        url = self.check_callback_url(callback_url)
        response = self._send("GET", url, what=CALLBACK_REQUEST, stream=True)
        try:
            if response.status_code == 200:
                return "ready"
            if response.status_code == 202:
                return "pending"
            raise_for_callback(
                response.status_code, response.text, response.headers.get("Content-Type", ""), self._secrets()
            )
        finally:
            response.close()  # on 200 the body is the file: drop it unread

    @contextmanager
    def open_export(self, callback_url: str, chunk_size: int = DOWNLOAD_CHUNK_SIZE) -> Iterator[ExportStream]:
        """Open the ready export file as a stream of chunks (one attempt, no retry).

        .. code-block:: python

            with hook.open_export(url) as export:
                for chunk in export.chunks():
                    sink.write(chunk)

        The iterator raises :class:`FollowAnalyticsDownloadError` if the body ends before its
        ``Content-Length`` or the connection breaks, so a partial file is never taken for a
        whole one.

        :raises FollowAnalyticsExportNotReadyError: on 202 (wait with ``ExportReadySensor`` first).
        :raises FollowAnalyticsExportExpiredError: on 400.
        """
        url = self.check_callback_url(callback_url)
        response = self._send(
            "GET",
            url,
            what="download of the export",
            stream=True,
            headers={"Accept": "*/*", "Accept-Encoding": "identity"},
        )
        try:
            status = response.status_code
            if status == 202:
                raise FollowAnalyticsExportNotReadyError(
                    "FollowAnalytics export is not ready yet (callback answered HTTP 202); wait for it with "
                    "ExportReadySensor before transferring, or set deferrable=True on the transfer.",
                    http_status=202,
                )
            if status != 200:
                raise_for_callback(status, response.text, response.headers.get("Content-Type", ""), self._secrets())
            yield ExportStream(response, chunk_size, self._secrets())
        finally:
            response.close()

    def download_export(
        self,
        callback_url: str,
        fileobj: IO[bytes],
        chunk_size: int = DOWNLOAD_CHUNK_SIZE,
        max_attempts: int | None = None,
    ) -> int:
        """Stream the ready export into ``fileobj`` and return the number of bytes written.

        Memory stays at about one chunk whatever the file size. A download that breaks off
        is retried from zero (the file object is rewound and truncated), up to
        ``max_attempts`` times (default: the connection's ``max_retries`` + 1).

        :param callback_url: URL returned by :meth:`start_export`, once ready.
        :param fileobj: a binary, seekable file object to write into.
        :param chunk_size: bytes read from the socket at a time.
        :param max_attempts: total download attempts.
        """
        # The one restart policy and reader of the transfers (imports nothing heavy).
        from airflow_provider_followanalytics.transfers._streaming import stream_export

        start = fileobj.tell()

        def copy(reader: Any) -> int:
            try:
                for chunk in iter(lambda: reader.read(chunk_size), b""):
                    fileobj.write(chunk)
            except FollowAnalyticsDownloadError:
                fileobj.seek(start)  # discard what this attempt wrote: the next one starts from zero
                fileobj.truncate()
                raise
            return int(reader.bytes_downloaded)

        attempts = max_attempts if max_attempts is not None else self.settings.max_retries + 1
        return stream_export(self, callback_url, copy, attempts=attempts, log=self.log, chunk_size=chunk_size)

    def test_connection(self) -> tuple[bool, str]:
        """Log in with the connection's credentials (the UI's *Test* button, ``airflow connections test``).

        One attempt with a timeout of at most ``TEST_CONNECTION_TIMEOUT`` seconds, without the
        retries of task requests: a refused port or a wrong password is reported within seconds.
        """
        try:
            settings = self.settings
            self._settings = dataclasses.replace(
                settings, max_retries=0, timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT)
            )
            try:
                with self._token_lock:
                    self._token = None
                self.login()
            finally:
                self._settings = settings
        except Exception as exc:
            return False, redact_text(str(exc), self._secrets())
        return True, f"Logged in to FollowAnalytics at {self.base_url} as {self.settings.email}."

    # ------------------------------------------------------------------ async (triggers)
    async def aget_session(self) -> aiohttp.ClientSession:
        """The aiohttp session of this hook's polls: shared by the hooks of the running event loop.

        Acquired on first use and held until :meth:`aclose`, which every async user of the hook
        must call. Do not close the session itself: other hooks (triggers) may be using it.
        """
        loop = asyncio.get_running_loop()
        if self._async_session is None or self._async_session.closed or self._async_loop is not loop:
            self._async_proxy = env_proxy_for((await self.aget_settings()).base_url)
            await self.aclose()  # a session of another (finished) loop cannot serve this one
            self._async_session = _LOOP_SESSIONS.acquire()
            self._async_loop = loop
        return self._async_session

    async def aclose(self) -> None:
        """Release the shared aiohttp session (the last hook of the loop closes it)."""
        session, loop = self._async_session, self._async_loop
        self._async_session = self._async_loop = None
        if session is not None and loop is not None:
            await _LOOP_SESSIONS.release(session, loop)

    def _aiohttp_timeout(self, settings: ConnectionSettings) -> Any:
        import aiohttp

        # connect includes waiting for a free pooled connection (see _sessions.py): an overloaded pool
        # turns into failed polls that back off, not into an ever longer queue.
        return aiohttp.ClientTimeout(total=None, connect=settings.timeout, sock_read=settings.timeout)

    async def alogin(self) -> str:
        """Log in asynchronously if no token is held, and return the token.

        Hooks of the same account share one login per process (a triggerer running 2,000
        waits logs in once, not 2,000 times); the first caller logs in while the others wait.
        """
        if self._token is not None:
            return self._token
        settings = await self.aget_settings()
        key = _account_key(settings)
        async with _login_lock(key):
            shared = _SHARED_TOKENS.get(key)
            if shared is None:
                shared = await self._alogin_request(settings)
                _SHARED_TOKENS[key] = shared
            return self._remember_token(shared)

    async def _alogin_request(self, settings: ConnectionSettings) -> str:
        import aiohttp

        session = await self.aget_session()
        try:
            async with session.post(
                f"{settings.base_url}/api/login",
                proxy=self._async_proxy,
                json={"email": settings.email, "password": settings.password},
                headers=self._headers(None, has_body=True),
                timeout=self._aiohttp_timeout(settings),
                allow_redirects=False,
            ) as response:
                status = response.status
                text = await response.text(errors="replace")
                content_type = response.headers.get("Content-Type", "")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except aiohttp.ClientSSLError as exc:
            raise self._tls_failure("login", exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FollowAnalyticsRetryableError(
                f"FollowAnalytics login failed: {type(exc).__name__}: {redact_text(str(exc), self._secrets())}"
            ) from None
        token = token_from_login_response(status, content_type, text, settings.email, retry_after, self._secrets())
        self.login_count += 1
        self.log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        return token

    def _avalid_callback(self, callback_url: str, base_url: str) -> str:
        # A trigger polls one URL hundreds of times: check it once (the checks parse the URL and
        # its host, a sizeable part of a poll's CPU), not on every poll.
        checked = self._checked_callback
        if checked is None or checked[:2] != (callback_url, base_url):
            checked = (callback_url, base_url, validate_callback_url(callback_url, base_url))
            self._checked_callback = checked
        return checked[2]

    def _aforget_token(self, failed_token: str, settings: ConnectionSettings) -> None:
        self._forget_token(failed_token)
        key = _account_key(settings)
        if _SHARED_TOKENS.get(key) == failed_token:
            del _SHARED_TOKENS[key]

    async def aget_export_status(self, callback_url: str) -> str:
        """Asynchronous :meth:`get_export_status`: one poll of the callback URL.

        Logs in if needed, and again once on 401/403. Never reads a 200 body: the
        connection is closed instead, so a multi-GB file costs nothing here.

        :return: ``"ready"`` or ``"pending"``.
        :raises FollowAnalyticsExportExpiredError: on 400.
        :raises FollowAnalyticsRetryableError: on network errors, timeouts, 429 and 5xx (with
            ``retry_after`` when the server sent one): the caller decides when to poll again.
        """
        import aiohttp

        settings = await self.aget_settings()
        # No mask_secret() of the export token here: Airflow's masker recompiles its regex for
        # every new secret, which stalls a triggerer running thousands of waits. This path never
        # logs or raises the raw URL (redact_url everywhere); the worker that started the export
        # and the worker that downloads it do mask the token.
        url = self._avalid_callback(callback_url, settings.base_url)
        session = await self.aget_session()
        for relogin in (False, True):
            token = await self.alogin()
            try:
                async with session.get(
                    url,
                    proxy=self._async_proxy,
                    headers=self._headers(token),
                    timeout=self._aiohttp_timeout(settings),
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    if status == 200:
                        response.close()  # the body is the file: drop the connection unread
                        return "ready"
                    if status == 202:
                        if response.content_length is not None and response.content_length <= _SMALL_BODY:
                            # Drain the small envelope: an unread body would make aiohttp drop this
                            # keep-alive connection, and the next poll would open a new one. A body
                            # of unknown length (chunked) is not read: it could be anything.
                            await response.read()
                        return "pending"
                    text = await response.text(errors="replace")
                    content_type = response.headers.get("Content-Type", "")
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except aiohttp.ClientSSLError as exc:
                raise self._tls_failure("callback poll", exc) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise FollowAnalyticsRetryableError(
                    f"FollowAnalytics callback poll failed: {type(exc).__name__}: "
                    f"{redact_text(str(exc), self._secrets())}"
                ) from None
            if status in (401, 403) and not relogin:
                self._aforget_token(token, settings)
                continue
            try:
                raise_for_callback(status, text, content_type, self._secrets())
            except FollowAnalyticsRetryableError as exc:
                exc.retry_after = retry_after
                raise
        raise FollowAnalyticsAuthError(  # pragma: no cover - the loop always returns or raises
            "FollowAnalytics callback kept answering 401 after a fresh login."
        )


class ExportStream:
    """A ready export being read: iterate :meth:`chunks`; check ``bytes_read`` afterwards.

    :param response: the streamed ``requests`` response (status 200).
    :param chunk_size: bytes per read.
    """

    def __init__(self, response: requests.Response, chunk_size: int, secrets: tuple[str | None, ...] = ()):
        self._response = response
        self._chunk_size = chunk_size
        self._secrets = secrets
        self.bytes_read = 0
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self.content_type: str = response.headers.get("Content-Type", "")

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in chunks; raise :class:`FollowAnalyticsDownloadError` if it is cut short."""
        import requests
        import urllib3.exceptions

        try:
            for chunk in self._response.raw.stream(self._chunk_size, decode_content=False):
                if chunk:
                    self.bytes_read += len(chunk)
                    yield chunk
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            ConnectionError,
            TimeoutError,
            OSError,
        ) as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets)
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download broke off after {self.bytes_read} bytes"
                f"{f' of {self.content_length}' if self.content_length is not None else ''}: {reason}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download is truncated: received {self.bytes_read} bytes, "
                f"Content-Length announced {self.content_length}."
            )


__all__ = ["ExportStream", "FollowAnalyticsHook"]
