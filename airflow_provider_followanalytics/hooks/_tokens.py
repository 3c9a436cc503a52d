"""The auth token of one hook, shared by its sync and async clients, and the headers that carry it."""

from __future__ import annotations

import threading

from airflow_provider_followanalytics._sessions import USER_AGENT


def request_headers(token: str | None, *, has_body: bool = False) -> dict[str, str]:
    """The headers of every FollowAnalytics request (``Authorization`` only with a token)."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if has_body:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Token {token}"
    return headers


class TokenKeeper:
    """The token a hook holds, and every token it ever held (a server may echo an expired one).

    ``lock`` serialises logins of the sync client: the first of many threads logs in, the others
    wait for its token.
    """

    def __init__(self) -> None:
        self.token: str | None = None
        self.past: list[str] = []
        self.lock = threading.Lock()

    def remember(self, token: str) -> str:
        """Hold ``token`` from now on and return it."""
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
