"""The hook's sync transport: its token, one ``requests`` session, retried requests, the export reader.

Network errors, timeouts, 429 and 5xx are retried with ``tenacity``; a 401/403 to a token logs in
again once and replays the request; redirects are refused. The client keeps no reference to its
hook (every call takes the settings): a cycle would keep a dropped hook's sockets open until the
next garbage collection.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics import _metrics
from airflow_provider_followanalytics._api import (
    RELOGIN_STATUSES,
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    raise_for_redirect,
    request_headers,
    token_from_login_response,
    transport_failure,
)
from airflow_provider_followanalytics._network import proxy_refused, route_for
from airflow_provider_followanalytics._urls import redact_text, redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsDownloadError, FollowAnalyticsRetryableError

if TYPE_CHECKING:
    from collections.abc import Generator

    import requests
    import tenacity

    from airflow_provider_followanalytics._api import ConnectionSettings, Secrets


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


class TokenKeeper:
    """The token of one hook (shared by its sync and async clients) and every token it held, since a
    server may echo an expired one. ``lock`` makes the first of many threads log in, the others wait."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.past: list[str] = []
        self.lock = threading.Lock()

    def remember(self, token: str) -> str:
        self.past.append(token)
        self.token = token
        return token

    def forget(self, failed_token: str | None) -> None:
        """Drop ``failed_token`` if still held: only the first thread that saw it fail logs in again."""
        with self.lock:
            if self.token == failed_token:
                self.token = None

    def refused(self, status: int, token: str | None, *, retried: bool) -> bool:
        """The one re-login rule of both clients: a 401 or 403 to a request that carried ``token`` forgets
        it and says to log in again and send the request once more (``retried``: that was done already)."""
        if retried or token is None or status not in RELOGIN_STATUSES:
            return False
        self.forget(token)
        return True

    def secrets(self, *known: str | None) -> tuple[str | None, ...]:
        """Values to hide in any text quoted from a server or an HTTP library: ``known`` (the settings'
        passwords) and every token held."""
        return (*known, *self.past)


class SyncClient:
    """The ``requests`` session, logins and requests of one hook (``tokens`` shared with its async client)."""

    def __init__(self, tokens: TokenKeeper, log: logging.Logger | Any) -> None:
        self._tokens = tokens
        self._log = log
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None

    def session(self) -> requests.Session:
        with self._session_lock:  # one session (one connection pool) per hook, even across threads
            if self._session is None:
                import requests
                from requests.adapters import HTTPAdapter

                logger = logging.getLogger("urllib3.connectionpool")
                if not any(isinstance(f, _RedactExportTokens) for f in logger.filters):
                    logger.addFilter(_RedactExportTokens())
                session = requests.Session()
                # Proxies and CA come from route_for() with each request (the same policy as the async
                # client's), not from requests' own reading of the environment; no ~/.netrc either.
                session.trust_env = False
                session.auth = _keep_headers
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
            return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def login(self, settings: ConnectionSettings) -> str:
        with self._tokens.lock:
            if self._tokens.token is not None:
                return self._tokens.token
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
            secrets = self._tokens.secrets(*settings.secrets())
            content_type = response.headers.get("Content-Type", "")
            token = token_from_login_response(response.status_code, content_type, text, settings.email, None, secrets)
            self._log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
            _metrics.login("sync")
            return self._tokens.remember(token)

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

        :param what: the request, for log lines and messages, e.g. ``"GET /api/data_exporters"``.
        :param authenticate: send the token (logging in first if none is held).
        :param headers: headers to add to (or replace in) the usual ones.
        """
        import requests
        import tenacity

        session = self.session()
        relogged = False
        # The callbacks given to tenacity never reference self: a Retrying is left in a reference cycle
        # after its call, which would hold this client's session open until a garbage collection.
        tokens, log = self._tokens, self._log

        def failure(exc: BaseException, attempts: int | None = None) -> Exception:
            tls = isinstance(exc, requests.exceptions.SSLError)  # the same handshake would fail again
            secrets = tokens.secrets(*settings.secrets())
            return transport_failure(what, exc, tls=tls, base_url=settings.base_url, secrets=secrets, attempts=attempts)

        route = route_for(url, settings.network)
        proxies = {} if route.proxy is None else {"http": route.proxy, "https": route.proxy}

        def send(token: str | None) -> requests.Response:
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={**request_headers(token, has_body=json is not None), **(headers or {})},
                    timeout=(settings.timeout, settings.timeout),
                    stream=stream,
                    allow_redirects=False,  # never carry the token to wherever a redirect points
                    proxies=proxies,
                    verify=route.verify,
                )
            except requests.exceptions.SSLError as exc:  # not retried
                raise failure(exc) from None
            except requests.exceptions.ProxyError as exc:
                if "407" in str(exc):  # a tunnel refused: new attempts send the same credentials
                    raise proxy_refused(what, route.proxy) from None
                raise  # the proxy is down or unreachable: retried like the API being down
            if response.status_code == 407 and route.proxy is not None:
                response.close()
                raise proxy_refused(what, route.proxy)
            return response

        def attempt() -> requests.Response:
            nonlocal relogged
            token = self.login(settings) if authenticate else None
            response = send(token)
            if self._tokens.refused(response.status_code, token, retried=relogged):
                response.close()
                self._log.info("FollowAnalytics %s answered %d: logging in again once", what, response.status_code)
                _metrics.relogin("sync")
                relogged = True
                response = send(self.login(settings))
            if 300 <= response.status_code < 400:
                response.close()
                raise_for_redirect(what, response.status_code, response.headers.get("Location"))
            return response

        def wait(state: tenacity.RetryCallState) -> float:
            # The server's Retry-After as given, else the exponential backoff.
            outcome = state.outcome
            retry_after = None if outcome is None or outcome.failed else outcome.result().headers.get("Retry-After")
            seconds = parse_retry_after(retry_after)
            if seconds is not None:
                return seconds
            return backoff_delay(state.attempt_number - 1, settings.retry_delay, settings.max_retry_delay)

        def stop(state: tenacity.RetryCallState) -> bool:
            # Out of retries, or a wait longer than the cap (only a Retry-After asks for one): fail at once.
            return state.attempt_number > settings.max_retries or state.upcoming_sleep > settings.max_retry_delay

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None
            assert state.next_action is not None
            if state.outcome.failed:
                exc = state.outcome.exception()
                reason = f": {type(exc).__name__}"
                cause = _metrics.retry_cause(None, isinstance(exc, requests.Timeout))
            else:
                state.outcome.result().close()
                reason = f" answered HTTP {state.outcome.result().status_code}"
                cause = _metrics.retry_cause(state.outcome.result().status_code, False)
            _metrics.http_retry(cause, "sync")
            retry = (state.attempt_number, settings.max_retries, state.next_action.sleep)
            log.warning("FollowAnalytics %s%s; retry %d/%d in %.1fs", what, reason, *retry)

        def give_up(state: tenacity.RetryCallState) -> Any:
            assert state.outcome is not None
            exc = state.outcome.exception()
            if exc is not None:
                raise failure(exc, state.attempt_number) from None
            response = state.outcome.result()
            if state.attempt_number > settings.max_retries:
                return response  # out of retries: the caller reports the status and the server's message
            response.close()
            raise FollowAnalyticsRetryableError(
                f"FollowAnalytics {what} failed: HTTP {response.status_code} with Retry-After "
                f"{state.upcoming_sleep:.0f}s, longer than max_retry_delay={settings.max_retry_delay:.0f}s",
                http_status=response.status_code,
                retry_after=state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout))
            | tenacity.retry_if_result(lambda response: is_retryable_status(response.status_code)),
            stop=stop,
            wait=wait,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )(attempt)


class ExportStream:
    """A ready export being read from its streamed 200 ``response``: iterate :meth:`chunks`, then
    check ``bytes_read``.

    :param response: the streamed 200 response of the callback URL (its body not read yet).
    :param chunk_size: largest chunk :meth:`chunks` yields, in bytes.
    :param secrets: strings (password, token, callback URL) to redact from the message of a broken download.
    """

    def __init__(self, response: requests.Response, chunk_size: int, secrets: Secrets = ()) -> None:
        self._response = response
        self._chunk_size = chunk_size
        self._secrets = secrets
        self.bytes_read = 0
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self.content_type: str = response.headers.get("Content-Type", "")

    def chunks(self) -> Generator[bytes, None, None]:
        """Yield the body in chunks; raise
        :class:`~airflow_provider_followanalytics.exceptions.FollowAnalyticsDownloadError` if it is cut short."""
        import requests
        import urllib3.exceptions

        try:
            for chunk in self._response.raw.stream(self._chunk_size, decode_content=False):
                if chunk:
                    self.bytes_read += len(chunk)
                    yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets)
            of = f" of {self.content_length}" if self.content_length is not None else ""
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download broke off after {self.bytes_read} bytes{of}: {reason}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download is truncated: received {self.bytes_read} bytes, "
                f"Content-Length announced {self.content_length}."
            )
