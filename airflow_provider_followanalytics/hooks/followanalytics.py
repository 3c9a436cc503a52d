"""FollowAnalyticsHook: one authenticated client for every FollowAnalytics API.

The transport lives in ``_sync_client.py`` (``requests``, for tasks) and ``_async_client.py``
(aiohttp, for the triggerer); both follow the protocol of ``_api.py``. Neither library is imported
before it is used, so a DAG file that imports the operators does not pay for them.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_followanalytics import CONN_TYPE, DEFAULT_CONN_ID, _metrics
from airflow_provider_followanalytics._api import (
    CALLBACK_REQUEST,
    FILE_FORMATS,
    USER_AGENT,
    ConnectionSettings,
    raise_for_callback,
    settings_from_connection,
    unwrap_envelope,
    validate_endpoint,
)
from airflow_provider_followanalytics._compat import BaseHook, aget_connection, mask_secret, secret_masker
from airflow_provider_followanalytics._network import env_proxy_for, route_for
from airflow_provider_followanalytics._urls import (
    export_token_of,
    is_insecure_remote,
    redact_text,
    redact_url,
    validate_callback_url,
)
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsConfigError,
    FollowAnalyticsExportNotReadyError,
)
from airflow_provider_followanalytics.hooks._async_client import PROCESS_STATE, AsyncClient
from airflow_provider_followanalytics.hooks._export_reader import download_to_file
from airflow_provider_followanalytics.hooks._sync_client import ExportStream, SyncClient, TokenKeeper

if TYPE_CHECKING:
    from collections.abc import Iterator

    import aiohttp
    import requests

# 256 KiB pieces: a 1 MiB piece no longer fits in L2 beside the page-cache pages it is copied into (a
# local write at half the speed of curl -o; 256 KiB doubles it, BENCHMARKS.md "The local-file row").
DOWNLOAD_CHUNK_SIZE = 256 << 10
#: test_connection() must answer within seconds (the UI's Test button): one attempt, this timeout at most.
TEST_CONNECTION_TIMEOUT = 5.0


class FollowAnalyticsHook(BaseHook):
    """Talk to any FollowAnalytics API with the account of an Airflow connection.

    The connection's fields and extras are described in the README (*Connection*). One hook logs
    in once and shares its token between threads; on a 401 (or a 403 to a request that carried a
    token) it logs in again once and replays the request.

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
    default_conn_name = DEFAULT_CONN_ID
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
        self._tokens = TokenKeeper()  # one token for the sync and the async client
        self._sync = SyncClient(self._tokens, self.log)
        self._async = AsyncClient(self._tokens, self.log, PROCESS_STATE)  # one pool per loop, one login per account

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form, built from provider info's ``conn-fields``.

        Airflow 2.x and 3.0 / 3.1 ask the hook (3.2+ read provider info). Only ``wtforms`` is needed:
        3.0 / 3.1's API server stands in for flask-appbuilder's widgets and flask-babel when they
        are absent, and reads no hook's form at all without wtforms.
        """
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        try:  # Airflow 2's FAB UI styles the inputs; a no-op for Airflow 3's API server
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

            text_widget: dict[str, Any] = {"widget": BS3TextFieldWidget()}
        except ImportError:
            text_widget = {}
        try:
            from flask_babel import lazy_gettext as translate
        except ImportError:
            translate = str

        from airflow_provider_followanalytics import get_provider_info

        fields: dict[str, Any] = {}
        for name, spec in get_provider_info()["connection-types"][0]["conn-fields"].items():
            kind, label = spec["schema"]["type"][0], translate(spec["label"])
            if kind == "boolean":
                fields[name] = BooleanField(label, description=spec["description"], default=False)
            elif kind == "integer":
                minimum = NumberRange(min=spec["schema"]["minimum"])
                fields[name] = IntegerField(
                    label, validators=[Optional(), minimum], description=spec["description"], **text_widget
                )
            else:  # numbers as text: the forms have no float field Airflow accepts
                fields[name] = StringField(label, description=spec["description"], **text_widget)
        return fields

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Provider info's ``ui-field-behaviour`` (what Airflow 3 reads) in the spelling Airflow 2
        validates a hook's answer against (``hidden_fields``; it drops the whole behaviour otherwise)."""
        from airflow_provider_followanalytics import get_provider_info

        behaviour: dict[str, Any] = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (looked up once, synchronously)."""
        if self._settings is None:
            # The masker first: if it cannot load, no frame holds the connection (nor its password) yet.
            secret_masker()
            conn_id = self.followanalytics_conn_id
            self._settings = self._checked(settings_from_connection(self.get_connection(conn_id), **self._overrides))
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """The connection settings, looked up without blocking the event loop."""
        if self._settings is None:
            secret_masker()
            conn_id = self.followanalytics_conn_id
            self._settings = self._checked(settings_from_connection(await aget_connection(conn_id), **self._overrides))
        return self._settings

    def _checked(self, settings: ConnectionSettings) -> ConnectionSettings:
        if is_insecure_remote(settings.base_url):
            # Every hook says it: the opt-in must never go unnoticed in a task log.
            self.log.warning(
                "INSECURE: connection %r sends the FollowAnalytics password and auth token in clear text "
                "over plain http to %s (extra allow_insecure_http is true). Use this only for a local "
                "emulator, never for the real API.",
                self.followanalytics_conn_id,
                settings.base_url,
            )
        route = route_for(settings.base_url, settings.network)
        if route.verify is False and settings.base_url.startswith("https:"):
            self.log.warning(
                "INSECURE: connection %r has the extra verify set to false: the certificate of %s is not checked, "
                "so anyone on the path can read the FollowAnalytics password and tokens. Point verify at the CA "
                "bundle that signed it instead.",
                self.followanalytics_conn_id,
                settings.base_url,
            )
        if route.proxy is not None or route.verify_from != "certifi":
            self.log.info(
                "FollowAnalytics requests to %s: proxy %s (%s), CA %s (%s)",
                settings.base_url,
                redact_url(route.proxy) if route.proxy else "none",
                route.proxy_from,
                route.verify,
                route.verify_from,
            )
        return settings

    @property
    def base_url(self) -> str:
        """The API base URL of the connection."""
        return self.settings.base_url

    def _secrets(self) -> tuple[str | None, ...]:
        return self._tokens.secrets(*(self._settings.secrets() if self._settings else ()))

    def get_session(self) -> requests.Session:
        """The hook's ``requests`` session (connection pooling; credentials are not stored in it)."""
        return self._sync.session()

    def close(self) -> None:
        """Close the sync session (the async one is closed by :meth:`aclose`)."""
        self._sync.close()

    def get_conn(self) -> requests.Session:
        """Return the ``requests`` session, logged in (Airflow's usual hook entry point)."""
        self.login()
        return self.get_session()

    def login(self) -> str:
        """Log in if no token is held, and return the token. Thread-safe: one login per hook."""
        return self._sync.login(self.settings)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        # One request with retries and re-login (SyncClient.send); the final response whatever its status.
        return self._sync.send(self.settings, method, url, **kwargs)

    def run(self, method: str, endpoint: str, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """Call any FollowAnalytics API and return the envelope's ``result`` (login, headers, retries,
        re-login and error handling included).

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
            Counted in ``followanalytics.export_started`` once the server accepted it (tag ``export_type``).
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
        _metrics.export_started(_metrics.export_type_of(endpoint))
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
            status = response.status_code
            if status in (200, 202):
                return "ready" if status == 200 else "pending"
            raise_for_callback(status, response.text, response.headers.get("Content-Type", ""), self._secrets())
        finally:
            response.close()  # on 200 the body is the file: drop it unread

    @contextmanager
    def open_export(self, callback_url: str, chunk_size: int = DOWNLOAD_CHUNK_SIZE) -> Iterator[ExportStream]:
        """Open the ready export as a stream: ``for chunk in export.chunks()`` (one attempt, no retry).

        ``chunks()`` raises :class:`FollowAnalyticsDownloadError` if the body ends before its
        ``Content-Length`` or the connection breaks, so a partial file is never taken for a whole one.

        :raises FollowAnalyticsExportNotReadyError: on 202 (wait with ``ExportReadySensor`` first).
        :raises FollowAnalyticsExportExpiredError: on 400.
        """
        url = self.check_callback_url(callback_url)
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}  # the file's bytes exactly as served
        response = self._send("GET", url, what="download of the export", stream=True, headers=headers)
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
        """Stream the ready export into ``fileobj`` (about one chunk in memory); return the bytes written.

        A download that breaks off is retried from zero (``fileobj`` rewound and truncated), up to
        ``max_attempts`` times (default: the connection's ``max_retries`` + 1).

        :param callback_url: URL returned by :meth:`start_export`, once ready.
        :param fileobj: a binary, seekable file object to write into.
        :param chunk_size: bytes read from the socket at a time.
        :param max_attempts: total download attempts.
        """
        attempts = max_attempts if max_attempts is not None else self.settings.max_retries + 1
        return download_to_file(self, callback_url, fileobj, attempts=attempts, log=self.log, chunk_size=chunk_size)

    def test_connection(self) -> tuple[bool, str]:
        """Log in once (the UI's *Test* button), with no retries and a timeout of at most
        ``TEST_CONNECTION_TIMEOUT`` seconds: a refused port or a wrong password is reported within seconds."""
        try:
            settings = self.settings
            self._settings = dataclasses.replace(
                settings, max_retries=0, timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT)
            )
            try:
                with self._tokens.lock:
                    self._tokens.token = None
                self.login()
            finally:
                self._settings = settings
        except Exception as exc:
            return False, redact_text(str(exc), self._secrets())
        return True, f"Logged in to FollowAnalytics at {self.base_url} as {self.settings.email}."

    async def aget_session(self) -> aiohttp.ClientSession:
        """The running loop's aiohttp session, shared by its hooks: held until :meth:`aclose`, which every
        async user of the hook must call. Never close the session itself: other triggers use it."""
        return await self._async.session(await self.aget_settings())

    async def aclose(self) -> None:
        """Release the shared aiohttp session (the last hook of the loop closes it)."""
        await self._async.close()

    async def alogin(self) -> str:
        """Log in asynchronously if no token is held, and return the token (once per account and process)."""
        return await self._async.login(await self.aget_settings())

    async def aget_export_status(self, callback_url: str) -> str:
        """Asynchronous :meth:`get_export_status`: one poll, never reading a 200 body.

        :return: ``"ready"`` or ``"pending"``.
        :raises FollowAnalyticsExportExpiredError: on 400.
        :raises FollowAnalyticsRetryableError: on network errors, timeouts, 429 and 5xx (with
            ``retry_after`` when the server sent one): the caller decides when to poll again.
        """
        return await self._async.export_status(await self.aget_settings(), callback_url)


__all__ = ["USER_AGENT", "ExportStream", "FollowAnalyticsHook", "env_proxy_for"]
