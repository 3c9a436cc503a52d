"""ExportReadyTrigger against the emulator when polls fail: transient failures ridden out, refusals as error events."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.fixtures import EMAIL, PASSWORD
from tests.triggers._support import assert_small_and_secret_free, first_event, trigger_for

pytestmark = pytest.mark.usefixtures("fa_conn")


# ----------------------------------------------------------------------- transient failures
async def test_failure_budget_ends_a_persistent_outage(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.add_fault("callback", status=503, count=1000)

    event = await first_event(trigger_for(callback_url, max_consecutive_failures=3))

    assert event["status"] == "error"
    assert event["reason"] == "unavailable"
    assert "3 consecutive failed polls" in event["message"]
    assert "HTTP 503" in event["message"]
    assert_small_and_secret_free(event, emulator, callback_url)
    assert len(emulator.requests_for("callback")) == 3  # exactly the budget, no more


async def test_a_successful_poll_resets_the_failure_count(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.ready_after = 1
    emulator.add_fault("callback", status=503, count=2)
    emulator.add_fault("callback", kind="delay", delay=0)  # answered normally: 202
    emulator.add_fault("callback", status=502, count=2)

    event = await first_event(trigger_for(callback_url, max_consecutive_failures=3))

    assert event["status"] == "ready"  # 4 failures, but never 3 in a row
    assert len(emulator.requests_for("callback")) == 6  # 503 503 202 502 502 200


async def test_network_resets_are_transient(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.add_fault("callback", kind="reset", count=2)

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "ready"
    assert len(emulator.requests_for("callback")) == 3


async def test_429_retry_after_is_honoured(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.add_fault("callback", status=429, retry_after="0.5")
    started = time.monotonic()

    event = await first_event(trigger_for(callback_url, poll_interval=0.05))

    assert event["status"] == "ready"
    assert time.monotonic() - started >= 0.5  # not back before the server said so
    assert len(emulator.requests_for("callback")) == 2


async def test_backoff_grows_from_the_poll_interval() -> None:
    trigger = trigger_for("u", poll_interval=2.0)

    delays = [trigger._backoff(failures, None) for failures in (1, 2, 3, 4)]

    for failures, delay in enumerate(delays, start=1):
        full = 2.0 * 2**failures
        assert full / 2 <= delay <= full  # exponential, with jitter in [50%, 100%]
    assert min(trigger._backoff(1, None) for _ in range(50)) >= 2.0  # never sooner than a normal poll
    assert trigger._backoff(1, 30.0) == 30.0  # Retry-After wins when longer
    assert trigger._backoff(1, 0.1) >= 2.0  # but never makes a poll come sooner
    assert trigger_for("u", poll_interval=1.0)._backoff(30, None) <= 600.0  # capped


async def test_token_expiry_mid_wait_logs_in_again(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.ready_after = 5
    emulator.token_max_uses = 2

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "ready"
    assert emulator.login_count == 3  # every 2 uses, one 401 and one fresh login
    relogins = emulator.login_count - 1
    assert len(emulator.requests_for("callback")) == 6 + relogins  # each 401 costs one replay


# -------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "url",
    [
        "https://files.example.net/api/exports/download_url?export_token=foreign-token-1",
        "http://10.1.2.3/api/exports/download_url?export_token=foreign-token-1",
        "ftp://127.0.0.1/api/exports/download_url?export_token=foreign-token-1",
    ],
    ids=["other-host", "plain-http-remote", "not-http"],
)
async def test_foreign_callback_is_refused_before_any_request(emulator: FollowAnalyticsEmulator, url: str) -> None:
    event = await first_event(trigger_for(url))

    assert event["status"] == "error"
    assert event["reason"] == "config"
    assert "foreign-token-1" not in event["message"]
    assert emulator.requests == []  # not even a login


async def test_wrong_password_is_an_error_event(
    emulator: FollowAnalyticsEmulator, callback_url: str, set_connection: Any
) -> None:
    set_connection("fa_wrong", conn_type="followanalytics", login=EMAIL, password="wrong-pw-77", host=emulator.url)

    event = await first_event(trigger_for(callback_url, followanalytics_conn_id="fa_wrong"))

    assert event["status"] == "error"
    assert event["reason"] == "auth"
    assert "Check the connection's e-mail and password" in event["message"]
    assert "wrong-pw-77" not in event["message"]
    assert len(emulator.requests_for("login")) == 1
    assert emulator.requests_for("callback") == []


async def test_unexpected_status_is_an_error_event(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.add_fault("callback", status=404)

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "error"
    assert event["reason"] == "api"
    assert "HTTP 404" in event["message"]
    assert len(emulator.requests_for("callback")) == 1


async def test_unexpected_exception_becomes_a_redacted_error_event(
    emulator: FollowAnalyticsEmulator, callback_url: str, monkeypatch: pytest.MonkeyPatch, sessions: list[Any]
) -> None:
    # A bug, not a server answer: no server can make the hook raise this, so it is patched in.
    async def broken(self: FollowAnalyticsHook, url: str) -> str:
        await self.aget_session()
        raise RuntimeError(f"bug while polling {url} with {PASSWORD}")

    monkeypatch.setattr(FollowAnalyticsHook, "aget_export_status", broken)

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "error"
    assert event["reason"] == "internal"
    assert "RuntimeError: bug while polling" in event["message"]
    assert "export_token=***" in event["message"]
    assert_small_and_secret_free(event, emulator, callback_url)
    assert sessions
    assert all(s.closed for s in sessions)


async def test_huge_server_messages_are_clipped(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.add_fault("callback", status=400, body=json.dumps({"success": False, "message": "x" * 50_000}))

    event = await first_event(trigger_for(callback_url))

    assert event["reason"] == "expired"
    assert_small_and_secret_free(event, emulator, callback_url)


async def test_logs_never_show_the_export_token(
    emulator: FollowAnalyticsEmulator,
    callback_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator.ready_after = 1
    emulator.add_fault("callback", status=503)

    with caplog.at_level(logging.DEBUG):
        event = await first_event(trigger_for(callback_url))

    assert event["status"] == "ready"
    logs = caplog.text + "".join(capsys.readouterr())
    assert "export_token=***" in logs
    assert callback_url.split("export_token=")[1] not in logs
