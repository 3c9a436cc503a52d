"""Per-process state shared by every hook: the event loops' aiohttp sessions and the async logins.

A triggerer runs thousands of waits in one event loop. aiohttp recommends one session per
application rather than one per request; one per trigger (each with its own connection pool,
keep-alive socket and parser, idle 99.9 % of the time) costs about 80 objects and 20 KiB per
wait and makes every full garbage collection of the triggerer longer. Shared per loop, 2,000
waits polling every few seconds use a handful of pooled keep-alive connections instead. Likewise
the waits of one account log in once per process, not once each.

What is shared is only the connection pool and the token: every request carries its own
``Authorization`` header, proxy and timeout, and cookies are never stored (``DummyCookieJar``),
so nothing of one account's requests leaks into another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from typing import TYPE_CHECKING

from airflow_provider_followanalytics import __version__

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_followanalytics._api import ConnectionSettings

USER_AGENT = f"airflow-provider-followanalytics/{__version__}"
#: Requests in flight at once per event loop; more wait for a free connection, within the
#: request's connect timeout (past it, the poll fails and backs off like any timeout). Bursts of
#: polls (a triggerer restart starts every wait at once) then reach the API as a steady stream
#: over reused connections, not as thousands of new ones.
MAX_CONNECTIONS = 100

AccountKey = tuple[str, str, str]


class _Shared:
    __slots__ = ("session", "users")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.users = 0


class ProcessState:
    """What the hooks of one process share, with one lifecycle and one reset.

    * **Sessions**: one aiohttp session per event loop, created by the first :meth:`acquire` in
      that loop and closed by the :meth:`release` of its last user. A loop that is closed and
      discarded takes its entry with it (weak keys), so a forgotten release leaks no loop.
    * **Logins**: one auth token per account (base URL, e-mail, password digest) for the whole
      process, taken by the first async login and shared with every later one; a token that the
      server rejects is dropped with :meth:`forget_token`. Logins of one account in one loop are
      serialised by :meth:`login_lock`, so a burst of waits logs in once.

    :meth:`reset` forgets every shared login and lock (tests call it between tests; a process
    that rotates credentials may call it too). It leaves the sessions alone: each belongs to the
    hooks that hold it and is closed by the last one's ``aclose()``.

    :param user_agent: the ``User-Agent`` header of every async request.
    """

    def __init__(self, user_agent: str = USER_AGENT) -> None:
        self._user_agent = user_agent
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = weakref.WeakKeyDictionary()
        self._tokens: dict[AccountKey, str] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[AccountKey, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ sessions
    def acquire(self) -> aiohttp.ClientSession:
        """Return the running loop's session (created on first use); pair with :meth:`release`."""
        import aiohttp

        loop = asyncio.get_running_loop()
        shared = self._sessions.get(loop)
        if shared is None or shared.session.closed:
            shared = _Shared(
                aiohttp.ClientSession(
                    headers={"User-Agent": self._user_agent},
                    connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    # No ~/.netrc lookup (a thread hop per request, and it would clash with our
                    # Authorization header); the async client applies the environment's proxy itself.
                    trust_env=False,
                )
            )
            self._sessions[loop] = shared
        shared.users += 1
        return shared.session

    async def release(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        """Give back a session from :meth:`acquire` on ``loop``; the last user closes it.

        :param session: the session :meth:`acquire` returned.
        :param loop: the loop it was acquired in.
        """
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

    # ------------------------------------------------------------------ logins
    @staticmethod
    def account_key(settings: ConnectionSettings) -> AccountKey:
        """The key of one account's shared login (a digest of the password, never the password)."""
        return (settings.base_url, settings.email, hashlib.sha256(settings.password.encode()).hexdigest())

    def login_lock(self, key: AccountKey) -> asyncio.Lock:
        """The running loop's lock for logging in to the account ``key``."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(key, asyncio.Lock())

    def shared_token(self, key: AccountKey) -> str | None:
        """The token of the account ``key`` that an earlier login shared, if any."""
        return self._tokens.get(key)

    def share_token(self, key: AccountKey, token: str) -> None:
        """Share a fresh login's ``token`` with every later login of the account ``key``."""
        self._tokens[key] = token

    def forget_token(self, key: AccountKey, token: str) -> None:
        """Drop ``token`` (the server rejected it), unless another hook already replaced it."""
        if self._tokens.get(key) == token:
            del self._tokens[key]

    def reset(self) -> None:
        """Forget every shared login and login lock (see the class docstring); sessions stay."""
        self._tokens.clear()
        self._locks.clear()


#: The one instance the hooks use.
PROCESS_STATE = ProcessState()
