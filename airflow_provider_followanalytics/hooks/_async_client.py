"""The triggerer's FollowAnalytics client: aiohttp, one attempt per call, never blocking the loop.

A triggerer runs thousands of waits in one loop, so every poll is kept cheap. One aiohttp session
each (own pool and parser, idle 99.9 % of the time) would cost about 20 KiB a wait: the hooks of a
loop share one (a :class:`ProcessState` handed to each client), and the waits of one account log
in once per loop. Only the pool and the token are shared: each request carries its own headers,
proxy and timeout, and no cookie is stored.
A callback URL is checked once per hook, and nothing is registered with the secret masker (it
recompiles its pattern for every new secret). The trigger decides when to poll again, from
``FollowAnalyticsRetryableError.retry_after``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import weakref
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics import _metrics
from airflow_provider_followanalytics._api import (
    CALLBACK_REQUEST,
    USER_AGENT,
    parse_retry_after,
    raise_for_callback,
    raise_for_redirect,
    request_headers,
    token_from_login_response,
    transport_failure,
)
from airflow_provider_followanalytics._network import Route, proxy_refused, route_for
from airflow_provider_followanalytics._urls import validate_callback_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAuthError, FollowAnalyticsRetryableError

if TYPE_CHECKING:
    import logging
    import ssl

    import aiohttp

    from airflow_provider_followanalytics._api import ConnectionSettings
    from airflow_provider_followanalytics.hooks._sync_client import TokenKeeper

#: Bodies of "not ready" answers up to this size are read so that their connection can be reused.
_SMALL_BODY = 64 * 1024
#: Requests in flight at once per event loop; more wait for a free connection within their connect
#: timeout, so a burst of polls (a triggerer restart) reaches the API as a steady stream.
MAX_CONNECTIONS = 100
AccountKey = tuple[str, str, str]  # base URL, e-mail, password digest


class _LoopShare:
    """What the hooks of one event loop share: its aiohttp session and one login per account."""

    __slots__ = ("locks", "session", "tokens", "users")

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.users = 0
        self.tokens: dict[AccountKey, str] = {}
        self.locks: dict[AccountKey, asyncio.Lock] = {}


class ProcessState:
    """The aiohttp session and the async logins of each event loop of one process.

    Everything is kept per loop (weak keys: a discarded loop takes its share with it), so a loop
    never sees another loop's session or token: the triggerer's one long-lived loop logs in once per
    account, and each ``asyncio.run`` (a test, ``dag.test()``) starts from nothing. A loop's session
    is created by its first :meth:`acquire` and closed by the :meth:`release` of its last user.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShare] = weakref.WeakKeyDictionary()
        # One context per CA (a context holds the whole parsed bundle, ~100s of KiB): not one per trigger.
        self._ssl_contexts: dict[tuple[bool | str, float], ssl.SSLContext] = {}

    def ssl_context(self, route: Route) -> ssl.SSLContext:
        """The shared ``ssl`` context of ``route``'s CA (made again when its file changes)."""
        changed = os.stat(route.verify).st_mtime if isinstance(route.verify, str) else 0.0
        key = (route.verify, changed)
        context = self._ssl_contexts.get(key)
        if context is None:
            context = self._ssl_contexts[key] = route.ssl_context()
        return context

    def share(self) -> _LoopShare:
        """The running loop's share (created on first use)."""
        loop = asyncio.get_running_loop()
        share = self._loops.get(loop)
        if share is None:
            share = self._loops[loop] = _LoopShare()
        return share

    def acquire(self) -> aiohttp.ClientSession:
        """Return the running loop's session (created on first use); pair with :meth:`release`."""
        import aiohttp

        share = self.share()
        if share.session is None or share.session.closed:
            share.session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                cookie_jar=aiohttp.DummyCookieJar(),
                # No ~/.netrc lookup (a thread hop per request, and it would clash with our
                # Authorization header); the async client applies the environment's proxy itself.
                trust_env=False,
            )
            share.users = 0
        share.users += 1
        return share.session

    async def release(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        """Give back a session :meth:`acquire` returned on ``loop``; the last user closes it."""
        share = self._loops.get(loop)
        if share is None or share.session is not session:
            return  # already closed and replaced: nothing of ours to release
        share.users -= 1
        if share.users <= 0:
            share.session = None  # before the await: a new user meanwhile gets a fresh session
            if not loop.is_closed() and loop is asyncio.get_running_loop():
                await session.close()

    def users(self) -> int:
        """How many hooks hold the running loop's session (0 if it has none)."""
        share = self._loops.get(asyncio.get_running_loop())
        return 0 if share is None or share.session is None else share.users

    @staticmethod
    def account_key(settings: ConnectionSettings) -> AccountKey:
        """The key of one account's shared login (a digest of the password, never the password)."""
        return (settings.base_url, settings.email, hashlib.sha256(settings.password.encode()).hexdigest())


#: The one instance the hooks hand their async clients.
PROCESS_STATE = ProcessState()


class AsyncClient:
    """Logins and callback polls of one hook over aiohttp, sharing its ``tokens`` with the sync client.

    Like the sync client, it takes the connection settings with each call and holds no reference to
    the hook (a cycle would keep a dropped hook's sync session open until the next garbage collection).
    """

    def __init__(self, tokens: TokenKeeper, log: logging.Logger | Any, state: ProcessState) -> None:
        self._tokens = tokens
        self._log = log
        self._state = state  # each loop's shared session and logins
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._route: Route | None = None  # callback URLs share the base URL's origin: one route
        self._ssl: ssl.SSLContext | bool = True
        self._checked_callback: tuple[str, str, str] | None = None  # (callback URL, base URL, validated URL)

    async def session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._route = route = route_for(settings.base_url, settings.network)
            self._ssl = self._state.ssl_context(route) if settings.base_url.startswith("https:") else True
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

        # connect includes waiting for a free pooled connection (MAX_CONNECTIONS): an overloaded pool
        # turns into failed polls that back off, not into an ever longer queue.
        timeout = aiohttp.ClientTimeout(total=None, connect=settings.timeout, sock_read=settings.timeout)
        proxy = None if self._route is None else self._route.proxy
        return session.request(proxy=proxy, ssl=self._ssl, timeout=timeout, allow_redirects=False, **kwargs)

    def _refused_by_proxy(self, what: str, status: int | None) -> None:
        if status == 407 and self._route is not None and self._route.proxy is not None:
            raise proxy_refused(what, self._route.proxy)

    async def login(self, settings: ConnectionSettings) -> str:
        """Return the hook's token, logging in (once per account and loop) if it holds none."""
        if self._tokens.token is not None:
            return self._tokens.token
        share, key = self._state.share(), self._state.account_key(settings)
        async with share.locks.setdefault(key, asyncio.Lock()):
            if key not in share.tokens:
                share.tokens[key] = await self._login_request(settings, await self.session(settings))
            return self._tokens.remember(share.tokens[key])

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
        self._refused_by_proxy("login", status)
        raise_for_redirect("POST /api/login", status, headers.get("Location"))
        retry_after = parse_retry_after(headers.get("Retry-After"))
        secrets = self._tokens.secrets(*settings.secrets())
        content_type = headers.get("Content-Type", "")
        token = token_from_login_response(status, content_type, text, settings.email, retry_after, secrets)
        self._log.info("Logged in to FollowAnalytics at %s as %s", settings.base_url, settings.email)
        _metrics.login("async")
        return token

    def _failure(self, what: str, exc: BaseException, settings: ConnectionSettings) -> Exception:
        import aiohttp

        if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused the CONNECT tunnel
            self._refused_by_proxy(what, exc.status)
        tls = isinstance(exc, aiohttp.ClientSSLError)  # the same handshake would fail again: not retryable
        secrets = self._tokens.secrets(*settings.secrets())
        return transport_failure(what, exc, tls=tls, base_url=settings.base_url, secrets=secrets)

    async def export_status(self, settings: ConnectionSettings, callback_url: str) -> str:
        """One poll of the callback URL: ``"ready"`` or ``"pending"`` (see ``aget_export_status``)."""
        import aiohttp

        # A trigger polls one URL hundreds of times: check it once (parsing the URL and its host is a
        # sizeable part of a poll's CPU). No mask_secret() of its token here (see the module docstring):
        # this path only ever logs or raises it redacted; the workers that start and download do mask it.
        checked = self._checked_callback
        if checked is None or checked[:2] != (callback_url, settings.base_url):
            checked = (callback_url, settings.base_url, validate_callback_url(callback_url, settings.base_url))
            self._checked_callback = checked
        session = await self.session(settings)
        for may_relogin in (True, False):
            token = await self.login(settings)
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
            self._refused_by_proxy("callback poll", status)
            if self._tokens.refused(status, token, retried=not may_relogin):
                _metrics.relogin("async")
                tokens = self._state.share().tokens
                key = self._state.account_key(settings)
                if tokens.get(key) == token:  # unless another hook already replaced it
                    del tokens[key]
                continue
            raise_for_redirect(CALLBACK_REQUEST, status, headers.get("Location"))
            secrets = self._tokens.secrets(*settings.secrets())
            try:
                raise_for_callback(status, text, headers.get("Content-Type", ""), secrets)
            except FollowAnalyticsRetryableError as exc:
                exc.retry_after = parse_retry_after(headers.get("Retry-After"))
                raise
        raise FollowAnalyticsAuthError(  # pragma: no cover - the loop always returns or raises
            "FollowAnalytics callback kept answering 401 after a fresh login."
        )
