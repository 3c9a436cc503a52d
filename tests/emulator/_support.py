"""What the emulator tests share: the demo account, the JSON content type, waiting, and HTTP client helpers."""

from __future__ import annotations

import http.client
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator

if TYPE_CHECKING:
    from collections.abc import Callable


EMAIL = "demo@example.com"
PASSWORD = "demo-password"


JSON_TYPE = "application/json; charset=utf-8"


# Helpers ---------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def login(emu: FollowAnalyticsEmulator, session: requests.Session) -> dict[str, str]:
    """Log in and return the Authorization header."""
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Token {response.json()['result']['auth_token']}"}


def start_export(
    emu: FollowAnalyticsEmulator,
    session: requests.Session,
    headers: dict[str, str],
    path: str = "/segments/FASEGMT_abcd12/devices_export.csv",
    params: dict[str, str] | None = None,
) -> str:
    """Start an export with ``skip_email=true`` and return its callback URL."""
    response = session.get(
        f"{emu.url}{path}", params={"skip_email": "true", **(params or {})}, headers=headers, timeout=5
    )
    assert response.status_code == 200, response.text
    callback = response.json()["result"]["callback"]
    assert isinstance(callback, str)
    return callback


def raw_connection(emu: FollowAnalyticsEmulator) -> http.client.HTTPConnection:
    parts = urlsplit(emu.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
