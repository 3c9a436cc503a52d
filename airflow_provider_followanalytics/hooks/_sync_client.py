"""The hook's sync client: one ``requests`` session, and every request sent with the request policy.

Network errors, timeouts, 429 and 5xx are retried by ``tenacity`` (``_policy.RequestPolicy``), a
401/403 to a token logs in again once and replays the request, redirects are refused. The client
keeps no reference to its hook (every call takes the connection settings): a reference cycle
would keep a dropped hook's sockets open until the next garbage collection.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._api import token_from_login_response
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.hooks._policy import (
    Outcome,
    RequestPolicy,
    classify,
    redirect_error,
    transport_failure,
)
from airflow_provider_followanalytics.hooks._tokens import request_headers

if TYPE_CHECKING:
    import requests

    from airflow_provider_followanalytics._api import ConnectionSettings
    from airflow_provider_followanalytics.exceptions import FollowAnalyticsError
    from airflow_provider_followanalytics.hooks._tokens import TokenKeeper


def _keep_headers(request: Any) -> Any:
    """A no-op ``requests`` auth: the hook sets ``Authorization`` itself."""
    return request


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


class SyncClient:
    """The sync half of one :class:`FollowAnalyticsHook`: its ``requests`` session, logins and requests.

    :param tokens: the hook's token, shared with its async client.
    :param log: the hook's logger.
    """

    def __init__(self, tokens: TokenKeeper, log: logging.Logger | Any) -> None:
        self._tokens = tokens
        self._log = log
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None

    def session(self) -> requests.Session:
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

    def login(self, settings: ConnectionSettings) -> str:
        """Log in if no token is held, and return the token. Thread-safe: one login per hook."""
        with self._tokens.lock:
            if self._tokens.token is None:
                return self._tokens.remember(self._login_request(settings))
            return self._tokens.token

    def _login_request(self, settings: ConnectionSettings) -> str:
        response = self.send(
            settings,
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
            secrets=self._tokens.secrets(settings.password),
        )
        self._log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        return token

    def send(
        self,
        settings: ConnectionSettings,
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
        """Send one request with retries and re-login; return the final response (any status).

        :param settings: the hook's connection settings (timeouts, retries, credentials).
        :param what: the request, for log lines and messages, e.g. ``"GET /api/data_exporters"``.
        :param authenticate: send the token (logging in first if none is held).
        :param headers: headers to add to (or replace in) the usual ones.
        """
        import requests

        session = self.session()
        relogged = False
        tokens, base_url = self._tokens, settings.base_url

        def failure(exc: BaseException, attempts: int | None = None) -> FollowAnalyticsError:
            tls = isinstance(exc, requests.exceptions.SSLError)  # the same handshake would fail again
            secrets = tokens.secrets(settings.password)
            return transport_failure(what, exc, tls=tls, base_url=base_url, secrets=secrets, attempts=attempts)

        def send(token: str | None) -> requests.Response:
            request_headers_ = request_headers(token, has_body=json is not None)
            request_headers_.update(headers or {})
            try:
                return session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=request_headers_,
                    timeout=(settings.timeout, settings.timeout),
                    stream=stream,
                    allow_redirects=False,  # never carry the token to wherever a redirect points
                )
            except requests.exceptions.SSLError as exc:  # not retried
                raise failure(exc) from None

        def attempt() -> requests.Response:
            nonlocal relogged
            token = self.login(settings) if authenticate else None
            response = send(token)
            if classify(response.status_code, may_relogin=authenticate and not relogged) is Outcome.RELOGIN:
                response.close()
                self._log.info("FollowAnalytics %s answered %d: logging in again once", what, response.status_code)
                self._tokens.forget(token)
                relogged = True
                response = send(self.login(settings))
            if classify(response.status_code, may_relogin=False) is Outcome.REDIRECT:
                response.close()
                raise redirect_error(what, response.status_code, response.headers.get("Location"))
            return response

        transient = (requests.ConnectionError, requests.Timeout)
        return RequestPolicy.of(settings).retrying(what, self._log, transient, failure)(attempt)
