"""The triggerer's FollowAnalytics client: aiohttp, one attempt per call, never blocking the loop.

Every poll is kept cheap, since a triggerer runs thousands of waits in one loop: the loop's pooled
session and the account's login are shared (``PROCESS_STATE``), a callback URL is checked once per
hook, and nothing is registered with the secret masker (it recompiles its pattern for every new
secret). The trigger decides when to poll again, from ``FollowAnalyticsRetryableError.retry_after``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_followanalytics._api import (
    CALLBACK_REQUEST,
    RELOGIN_STATUSES,
    parse_retry_after,
    raise_for_callback,
    raise_for_redirect,
    token_from_login_response,
    transport_failure,
)
from airflow_provider_followanalytics._sessions import PROCESS_STATE, request_headers
from airflow_provider_followanalytics._urls import validate_callback_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAuthError, FollowAnalyticsRetryableError

if TYPE_CHECKING:
    import logging

    import aiohttp

    from airflow_provider_followanalytics._api import ConnectionSettings
    from airflow_provider_followanalytics._sessions import TokenKeeper
    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: Bodies of "not ready" answers up to this size are read so that their connection can be reused.
_SMALL_BODY = 64 * 1024
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


def env_proxy_for(url: str) -> str | None:
    """The ``HTTPS_PROXY`` / ``HTTP_PROXY`` that applies to ``url`` (honouring ``NO_PROXY``), if any."""
    # Reading the whole environment costs ~0.5 ms; thousands of triggers ask the same question.
    return _proxy_for(url, tuple(os.environ.get(name) for name in _PROXY_VARIABLES))


@functools.lru_cache(maxsize=64)
def _proxy_for(url: str, _environment: tuple[str | None, ...]) -> str | None:
    import urllib.request  # not at module import: DAG files that import the hook do not need it

    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


class AsyncClient:
    """Logins and callback polls of one hook over aiohttp, sharing its ``tokens`` with the sync client.

    Calls take the hook and use its public async methods; the client keeps no reference to it (a
    cycle would keep a dropped hook's sync session open until the next garbage collection).
    """

    def __init__(self, tokens: TokenKeeper, log: logging.Logger | Any) -> None:
        self._tokens = tokens
        self._log = log
        self._state = PROCESS_STATE
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None  # callback URLs share the base URL's origin
        self._checked_callback: tuple[str, str, str] | None = None  # (callback URL, base URL, validated URL)

    async def session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._proxy = env_proxy_for(settings.base_url)
            await self.close()  # a session of another (finished) loop cannot serve this one
            self._session = self._state.acquire()
            self._loop = loop
        return self._session

    async def close(self) -> None:
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is not None and loop is not None:
            await self._state.release(session, loop)

    def _request(self, session: aiohttp.ClientSession, settings: ConnectionSettings, **kwargs: Any) -> Any:
        import aiohttp

        # connect includes waiting for a free pooled connection (see _sessions.py): an overloaded pool
        # turns into failed polls that back off, not into an ever longer queue.
        timeout = aiohttp.ClientTimeout(total=None, connect=settings.timeout, sock_read=settings.timeout)
        return session.request(proxy=self._proxy, timeout=timeout, allow_redirects=False, **kwargs)

    async def login(self, hook: FollowAnalyticsHook) -> str:
        """Return the hook's token, logging in (once per account and process) if it holds none."""
        if self._tokens.token is not None:
            return self._tokens.token
        settings = await hook.aget_settings()
        key = self._state.account_key(settings)
        async with self._state.login_lock(key):
            if key not in self._state.tokens:
                self._state.tokens[key] = await self._login_request(settings, await hook.aget_session())
            return self._tokens.remember(self._state.tokens[key])

    async def _login_request(self, settings: ConnectionSettings, session: aiohttp.ClientSession) -> str:
        import aiohttp

        try:
            async with self._request(
                session,
                settings,
                method="POST",
                url=f"{settings.base_url}/api/login",
                json={"email": settings.email, "password": settings.password},
                headers=request_headers(None, has_body=True),
            ) as response:
                status, headers = response.status, response.headers
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("login", exc, settings) from None
        raise_for_redirect("POST /api/login", status, headers.get("Location"))
        retry_after = parse_retry_after(headers.get("Retry-After"))
        secrets = self._tokens.secrets(settings.password)
        content_type = headers.get("Content-Type", "")
        token = token_from_login_response(status, content_type, text, settings.email, retry_after, secrets)
        self._log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        return token

    def _failure(self, what: str, exc: BaseException, settings: ConnectionSettings) -> Exception:
        import aiohttp

        tls = isinstance(exc, aiohttp.ClientSSLError)  # the same handshake would fail again: not retryable
        secrets = self._tokens.secrets(settings.password)
        return transport_failure(what, exc, tls=tls, base_url=settings.base_url, secrets=secrets)

    async def export_status(self, hook: FollowAnalyticsHook, callback_url: str) -> str:
        """One poll of the callback URL: ``"ready"`` or ``"pending"`` (see ``aget_export_status``)."""
        import aiohttp

        settings = await hook.aget_settings()
        # A trigger polls one URL hundreds of times: check it once (parsing the URL and its host is a
        # sizeable part of a poll's CPU). No mask_secret() of its token here (see the module docstring):
        # this path only ever logs or raises it redacted; the workers that start and download do mask it.
        checked = self._checked_callback
        if checked is None or checked[:2] != (callback_url, settings.base_url):
            checked = (callback_url, settings.base_url, validate_callback_url(callback_url, settings.base_url))
            self._checked_callback = checked
        session = await hook.aget_session()
        for may_relogin in (True, False):
            token = await hook.alogin()
            try:
                async with self._request(
                    session, settings, method="GET", url=checked[2], headers=request_headers(token)
                ) as response:
                    status, headers = response.status, response.headers
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
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._failure("callback poll", exc, settings) from None
            if may_relogin and status in RELOGIN_STATUSES:
                self._tokens.forget(token)
                key = self._state.account_key(settings)
                if self._state.tokens.get(key) == token:  # unless another hook already replaced it
                    del self._state.tokens[key]
                continue
            raise_for_redirect(CALLBACK_REQUEST, status, headers.get("Location"))
            secrets = self._tokens.secrets(settings.password)
            try:
                raise_for_callback(status, text, headers.get("Content-Type", ""), secrets)
            except FollowAnalyticsRetryableError as exc:
                exc.retry_after = parse_retry_after(headers.get("Retry-After"))
                raise
        raise FollowAnalyticsAuthError(  # pragma: no cover - the loop always returns or raises
            "FollowAnalytics callback kept answering 401 after a fresh login."
        )
