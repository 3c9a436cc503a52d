"""Who holds what: a hook's token, and what every hook of a process shares (internal).

A triggerer runs thousands of waits in one loop: one aiohttp session each (own pool and parser, idle
99.9 % of the time) would cost about 20 KiB a wait, so they share one per loop, and the waits of one
account log in once. Only the pool and token are shared: each request carries its own headers,
proxy and timeout, and no cookie is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from typing import TYPE_CHECKING

from airflow_provider_followanalytics import __version__

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_followanalytics._api import ConnectionSettings

USER_AGENT = f"airflow-provider-followanalytics/{__version__}"
#: Requests in flight at once per event loop; more wait for a free connection within their connect
#: timeout, so a burst of polls (a triggerer restart) reaches the API as a steady stream.
MAX_CONNECTIONS = 100

AccountKey = tuple[str, str, str]


def request_headers(token: str | None, *, has_body: bool = False) -> dict[str, str]:
    """The headers of every FollowAnalytics request (``Authorization`` only with a token)."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if has_body:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Token {token}"
    return headers


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

    def secrets(self, password: str | None) -> tuple[str | None, ...]:
        """Values to hide in any text quoted from a server or an HTTP library."""
        return (password, *self.past)


class _Shared:
    __slots__ = ("session", "users")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session, self.users = session, 0


class ProcessState:
    """The aiohttp session of each event loop and the async login of each account, for one process.

    A loop's session is created by its first :meth:`acquire` and closed by the :meth:`release` of its
    last user; a discarded loop takes its entry with it (weak keys). ``tokens`` maps an account
    (:meth:`account_key`) to the token its first async login shared. :meth:`reset` forgets the tokens
    and login locks (tests call it between tests) and leaves each session to the hooks that hold it.
    """

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[AccountKey, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self.tokens: dict[AccountKey, str] = {}

    def acquire(self) -> aiohttp.ClientSession:
        """Return the running loop's session (created on first use); pair with :meth:`release`."""
        import aiohttp

        loop = asyncio.get_running_loop()
        shared = self._sessions.get(loop)
        if shared is None or shared.session.closed:
            shared = self._sessions[loop] = _Shared(
                aiohttp.ClientSession(
                    headers={"User-Agent": USER_AGENT},
                    connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    # No ~/.netrc lookup (a thread hop per request, and it would clash with our
                    # Authorization header); the async client applies the environment's proxy itself.
                    trust_env=False,
                )
            )
        shared.users += 1
        return shared.session

    async def release(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        """Give back a session :meth:`acquire` returned on ``loop``; the last user closes it."""
        shared = self._sessions.get(loop)
        if shared is None or shared.session is not session:
            return  # already closed and replaced: nothing of ours to release
        shared.users -= 1
        if shared.users <= 0:
            del self._sessions[loop]  # before the await: a new user meanwhile gets a fresh session
            if not loop.is_closed() and loop is asyncio.get_running_loop():
                await session.close()

    def users(self) -> int:
        """How many hooks hold the running loop's session (0 if it has none)."""
        shared = self._sessions.get(asyncio.get_running_loop())
        return 0 if shared is None else shared.users

    @staticmethod
    def account_key(settings: ConnectionSettings) -> AccountKey:
        """The key of one account's shared login (a digest of the password, never the password)."""
        return (settings.base_url, settings.email, hashlib.sha256(settings.password.encode()).hexdigest())

    def login_lock(self, key: AccountKey) -> asyncio.Lock:
        """The running loop's lock for logging in to the account ``key``."""
        return self._locks.setdefault(asyncio.get_running_loop(), {}).setdefault(key, asyncio.Lock())

    def reset(self) -> None:
        """Forget every shared login and login lock; sessions stay with their users."""
        self.tokens.clear()
        self._locks.clear()


#: The one instance the hooks use.
PROCESS_STATE = ProcessState()
