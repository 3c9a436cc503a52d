"""The triggerer's FollowAnalytics client: aiohttp, one attempt per call, never blocking the loop.

A triggerer runs thousands of waits in one event loop, so every poll is kept cheap: the loop's
pooled session and the account's login are shared (``PROCESS_STATE``), a callback URL is checked
once per hook, not per poll, and nothing is registered with the secret masker (it recompiles its
pattern for every new secret). Each call makes one attempt: the trigger decides when to poll
again, from ``FollowAnalyticsRetryableError.retry_after``. Outcomes are classified by the same
table as the sync client's (``_policy.classify``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._api import CALLBACK_REQUEST, raise_for_callback, token_from_login_response
from airflow_provider_followanalytics._sessions import PROCESS_STATE, ProcessState
from airflow_provider_followanalytics._urls import validate_callback_url
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAuthError,
    FollowAnalyticsError,
    FollowAnalyticsRetryableError,
)
from airflow_provider_followanalytics.hooks._policy import (
    Outcome,
    classify,
    redirect_error,
    retry_after_of,
    transport_failure,
)
from airflow_provider_followanalytics.hooks._tokens import request_headers

if TYPE_CHECKING:
    import logging

    import aiohttp

    from airflow_provider_followanalytics._api import ConnectionSettings
    from airflow_provider_followanalytics.hooks._tokens import TokenKeeper
    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: Bodies of "not ready" answers up to this size are read so that their connection can be reused.
_SMALL_BODY = 64 * 1024
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


async def _read_answer(response: aiohttp.ClientResponse) -> tuple[str, str, float | None, str | None]:
    """What an answer other than 200/202 says: its body, Content-Type, Retry-After and Location."""
    headers = response.headers
    text = await response.text(errors="replace")
    return text, headers.get("Content-Type", ""), retry_after_of(headers), headers.get("Location")


class AsyncClient:
    """The async half of one :class:`FollowAnalyticsHook`: logins and callback polls over aiohttp.

    Logins and polls take the hook and go through its public async methods (``aget_settings``,
    ``aget_session``, ``alogin``) as they always did; the client keeps no reference to it, since a
    reference cycle would keep a dropped hook's sync session and sockets open until the next
    garbage collection.

    :param tokens: the hook's token, shared with its sync client.
    :param log: the hook's logger.
    :param state: the per-process sessions and logins (tests may pass their own).
    """

    def __init__(
        self,
        tokens: TokenKeeper,
        log: logging.Logger | Any,
        state: ProcessState = PROCESS_STATE,
    ) -> None:
        self._tokens = tokens
        self._log = log
        self._state = state
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None  # callback URLs share the base URL's origin
        self._checked_callback: tuple[str, str, str] | None = None  # (callback URL, base URL, validated URL)

    async def session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        """The running loop's shared session, acquired on first use and held until :meth:`close`."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._proxy = env_proxy_for(settings.base_url)
            await self.close()  # a session of another (finished) loop cannot serve this one
            self._session = self._state.acquire()
            self._loop = loop
        return self._session

    async def close(self) -> None:
        """Release the shared session (the last user of the loop closes it)."""
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is not None and loop is not None:
            await self._state.release(session, loop)

    @staticmethod
    def _timeout(settings: ConnectionSettings) -> Any:
        import aiohttp

        # connect includes waiting for a free pooled connection (see _sessions.py): an overloaded pool
        # turns into failed polls that back off, not into an ever longer queue.
        return aiohttp.ClientTimeout(total=None, connect=settings.timeout, sock_read=settings.timeout)

    async def login(self, hook: FollowAnalyticsHook) -> str:
        """Return the hook's token, logging in (once per account and process) if it holds none."""
        if self._tokens.token is not None:
            return self._tokens.token
        settings = await hook.aget_settings()
        key = self._state.account_key(settings)
        async with self._state.login_lock(key):
            shared = self._state.shared_token(key)
            if shared is None:
                shared = await self._login_request(settings, await hook.aget_session())
                self._state.share_token(key, shared)
            return self._tokens.remember(shared)

    async def _login_request(self, settings: ConnectionSettings, session: aiohttp.ClientSession) -> str:
        import aiohttp

        try:
            async with session.post(
                f"{settings.base_url}/api/login",
                proxy=self._proxy,
                json={"email": settings.email, "password": settings.password},
                headers=request_headers(None, has_body=True),
                timeout=self._timeout(settings),
                allow_redirects=False,
            ) as response:
                status = response.status
                text, content_type, retry_after, location = await _read_answer(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("login", exc, settings) from None
        if classify(status, may_relogin=False) is Outcome.REDIRECT:
            raise redirect_error("POST /api/login", status, location)
        secrets = self._tokens.secrets(settings.password)
        token = token_from_login_response(status, content_type, text, settings.email, retry_after, secrets)
        self._log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        return token

    def _failure(self, what: str, exc: BaseException, settings: ConnectionSettings) -> FollowAnalyticsError:
        import aiohttp

        tls = isinstance(exc, aiohttp.ClientSSLError)  # the same handshake would fail again: not retryable
        secrets = self._tokens.secrets(settings.password)
        return transport_failure(what, exc, tls=tls, base_url=settings.base_url, secrets=secrets)

    def _valid_callback(self, callback_url: str, base_url: str) -> str:
        # A trigger polls one URL hundreds of times: check it once (the checks parse the URL and
        # its host, a sizeable part of a poll's CPU), not on every poll.
        checked = self._checked_callback
        if checked is None or checked[:2] != (callback_url, base_url):
            checked = (callback_url, base_url, validate_callback_url(callback_url, base_url))
            self._checked_callback = checked
        return checked[2]

    async def export_status(self, hook: FollowAnalyticsHook, callback_url: str) -> str:
        """One poll of the callback URL: ``"ready"`` or ``"pending"`` (see ``aget_export_status``)."""
        import aiohttp

        settings = await hook.aget_settings()
        # No mask_secret() of the export token here: Airflow's masker recompiles its regex for
        # every new secret, which stalls a triggerer running thousands of waits. This path never
        # logs or raises the raw URL (redact_url everywhere); the worker that started the export
        # and the worker that downloads it do mask the token.
        url = self._valid_callback(callback_url, settings.base_url)
        session = await hook.aget_session()
        for may_relogin in (True, False):
            token = await hook.alogin()
            try:
                async with session.get(
                    url,
                    proxy=self._proxy,
                    headers=request_headers(token),
                    timeout=self._timeout(settings),
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
                    text, content_type, retry_after, location = await _read_answer(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._failure("callback poll", exc, settings) from None
            outcome = classify(status, may_relogin=may_relogin)
            if outcome is Outcome.RELOGIN:
                self._tokens.forget(token)
                self._state.forget_token(self._state.account_key(settings), token)
                continue
            if outcome is Outcome.REDIRECT:
                raise redirect_error(CALLBACK_REQUEST, status, location)
            try:
                raise_for_callback(status, text, content_type, self._tokens.secrets(settings.password))
            except FollowAnalyticsRetryableError as exc:
                exc.retry_after = retry_after
                raise
        raise FollowAnalyticsAuthError(  # pragma: no cover - the loop always returns or raises
            "FollowAnalytics callback kept answering 401 after a fresh login."
        )
