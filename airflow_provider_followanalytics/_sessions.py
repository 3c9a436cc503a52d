"""One aiohttp session per event loop, shared by the hooks (and so the triggers) that run in it.

A triggerer runs thousands of waits in one event loop. aiohttp recommends one session per
application rather than one per request; one per trigger (each with its own connection pool,
keep-alive socket and parser, idle 99.9 % of the time) costs about 80 objects and 20 KiB per
wait and makes every full garbage collection of the triggerer longer. Shared per loop, 2,000
waits polling every few seconds use a handful of pooled keep-alive connections instead.

What is shared is only the connection pool: every request carries its own ``Authorization``
header, proxy and timeout, and cookies are never stored (``DummyCookieJar``), so nothing of one
account's requests leaks into another's. The session is closed when its last user releases it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

#: Requests in flight at once per event loop; more wait for a free connection, within the
#: request's connect timeout (past it, the poll fails and backs off like any timeout). Bursts of
#: polls (a triggerer restart starts every wait at once) then reach the API as a steady stream
#: over reused connections, not as thousands of new ones.
MAX_CONNECTIONS = 100


class _Shared:
    __slots__ = ("session", "users")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.users = 0


class LoopSessions:
    """Hand out the running loop's shared aiohttp session, counting its users.

    :param user_agent: the ``User-Agent`` header of every request.
    """

    def __init__(self, user_agent: str) -> None:
        self._user_agent = user_agent
        # Weak keys: a closed and discarded loop (one per test, say) takes its entry with it.
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = weakref.WeakKeyDictionary()

    def acquire(self) -> aiohttp.ClientSession:
        """Return the running loop's session (created on first use); pair with :meth:`release`."""
        import aiohttp

        loop = asyncio.get_running_loop()
        shared = self._by_loop.get(loop)
        if shared is None or shared.session.closed:
            shared = _Shared(
                aiohttp.ClientSession(
                    headers={"User-Agent": self._user_agent},
                    connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    # No ~/.netrc lookup (a thread hop per request, and it would clash with our
                    # Authorization header); the hook applies the environment's proxy itself.
                    trust_env=False,
                )
            )
            self._by_loop[loop] = shared
        shared.users += 1
        return shared.session

    async def release(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        """Give back a session from :meth:`acquire` on ``loop``; the last user closes it."""
        shared = self._by_loop.get(loop)
        if shared is None or shared.session is not session:
            return  # already closed and replaced: nothing of ours to release
        shared.users -= 1
        if shared.users <= 0:
            del self._by_loop[loop]  # before the await: a new user meanwhile gets a fresh session
            if not loop.is_closed() and loop is asyncio.get_running_loop():
                await session.close()

    def users(self) -> int:
        """How many hooks hold the running loop's session (0 if it has none)."""
        shared = self._by_loop.get(asyncio.get_running_loop())
        return 0 if shared is None else shared.users
