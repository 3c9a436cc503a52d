"""Drive an out-of-process FollowAnalytics emulator from a benchmark (standard library only)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

from benchmarks._common import EMAIL, EXPORT_PATH, PASSWORD, BenchError


class EmulatorClient:
    """The emulator's control endpoints, its login, and new exports, over one kept-alive connection."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # one reconnect if the kept-alive connection was closed
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._conn.request(method, path, body=data, headers=all_headers)
                response = self._conn.getresponse()
                text = response.read()
                return response.status, json.loads(text) if text else None
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _control(self, method: str, action: str, body: Any = None) -> Any:
        status, payload = self._request(method, f"/_emulator/{action}", body)
        if status != 200:
            raise BenchError(f"emulator {action} answered {status}: {payload}")
        return payload

    def configure(self, **settings: Any) -> None:
        """Set emulator knobs (``never_ready``, ``export_size``, ``ready_after``, ...)."""
        self._control("POST", "config", settings)

    def add_fault(self, **fault: Any) -> None:
        """Inject a fault (``route``, ``kind``, ``status``, ``count``, ``retry_after``, ...)."""
        self._control("POST", "faults", fault)

    def state(self) -> dict[str, Any]:
        """Counters: ``login_count``, ``requests`` per route, ``bytes_sent``, ..."""
        state: dict[str, Any] = self._control("GET", "state")
        return state

    def login(self) -> str:
        """Log in as the benchmark account and return an auth token."""
        status, payload = self._request("POST", "/api/login", {"email": EMAIL, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"emulator login answered {status}")
        token: str = payload["result"]["auth_token"]
        return token

    def new_exports(self, count: int, token: str | None = None) -> list[str]:
        """Start ``count`` exports and return their callback URLs."""
        token = token or self.login()
        urls = []
        for _ in range(count):
            status, payload = self._request("GET", EXPORT_PATH, headers={"Authorization": f"Token {token}"})
            if status != 200:
                raise BenchError(f"emulator export answered {status}: {payload}")
            urls.append(payload["result"]["callback"])
        return urls

    def new_export(self, token: str | None = None) -> str:
        """Start one export and return its callback URL."""
        return self.new_exports(1, token)[0]

    def wait_bytes_sent(self, count: int, timeout: float = 30.0) -> list[int]:
        """Wait until ``count`` downloads have ended at the emulator; return ``bytes_sent``."""
        deadline = time.monotonic() + timeout
        while True:
            sent: list[int] = self.state()["bytes_sent"]
            if len(sent) >= count or time.monotonic() > deadline:
                return sent
            time.sleep(0.05)

    def close(self) -> None:
        """Close the kept-alive control connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def login_token(emulator_url: str) -> str:
    """Log in once (in the parent) and return the token every worker of a run reuses."""
    client = EmulatorClient(emulator_url)
    try:
        return client.login()
    finally:
        client.close()
