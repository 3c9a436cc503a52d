"""ExportReadyTrigger.run() driven directly with asyncio against the emulator (real sockets)."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from typing import Any

import pytest

from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks._async_client import AsyncClient
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.triggers.export_ready import POLL_JITTER, ExportReadyTrigger
from tests.fixtures import EMAIL, PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("fa_conn")

CLASSPATH = "airflow_provider_followanalytics.triggers.export_ready.ExportReadyTrigger"
SEGMENT_EXPORT = "/segments/FASEGMT_abcd12/devices_export"


@pytest.fixture
def callback_url(emulator: FollowAnalyticsEmulator) -> str:
    """A fresh export's callback URL (started with the sync hook; its login is then forgotten)."""
    url = FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {"fields": "current_user_id"})
    # Count only the trigger's requests and logins (reset() would also forget the export).
    emulator.requests.clear()
    emulator.login_count = 0
    return url


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every aiohttp session a hook's async client uses, one per request (a spy: the real method runs)."""
    seen: list[Any] = []
    original = AsyncClient.session

    async def spy(self: AsyncClient, settings: Any) -> Any:
        session = await original(self, settings)
        seen.append(session)
        return session

    monkeypatch.setattr(AsyncClient, "session", spy)
    return seen


def test_repr_hides_the_export_token() -> None:
    # Airflow 2's triggerer logs repr(trigger) into the task log when it starts the trigger.
    trigger = ExportReadyTrigger(callback_url="http://127.0.0.1:1/api/exports/download_url?export_token=s3cr3t")

    assert "s3cr3t" not in repr(trigger)
    assert "export_token=***" in repr(trigger)


async def first_event(trigger: ExportReadyTrigger) -> dict[str, Any]:
    events = trigger.run()
    event = await events.__anext__()
    await events.aclose()
    return event.payload


def assert_small_and_secret_free(event: dict[str, Any], emulator: FollowAnalyticsEmulator, url: str) -> None:
    text = json.dumps(event)
    assert len(text.encode()) < 1024, len(text)
    assert PASSWORD not in text
    for token in emulator.issued_tokens:
        assert token not in text
    export_token = url.split("export_token=")[1]
    assert export_token not in text  # Airflow's triggerer logs every event into the task log
    assert event["callback_url"] == redact_url(url)  # for display only: the task knows its own URL


def trigger_for(url: str, **kwargs: Any) -> ExportReadyTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deadline", time.time() + 30)
    return ExportReadyTrigger(callback_url=url, **kwargs)


# ----------------------------------------------------------------------------- serialization
def test_serialize_is_json_only_and_rebuilds_the_same_trigger() -> None:
    deadline = time.time() + 3600
    trigger = ExportReadyTrigger(
        callback_url="http://127.0.0.1:1/api/exports/download_url?export_token=t",
        followanalytics_conn_id="fa_other",
        poll_interval=15,
        deadline=deadline,
        max_consecutive_failures=7,
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON, nothing else
    assert kwargs == {
        "callback_url": "http://127.0.0.1:1/api/exports/download_url?export_token=t",
        "followanalytics_conn_id": "fa_other",
        "poll_interval": 15.0,
        "deadline": deadline,
        "max_consecutive_failures": 7,
    }
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"poll_interval": True}, "poll_interval=True"),
        ({"deadline": "tomorrow"}, "deadline='tomorrow'"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures=0"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FollowAnalyticsConfigError, match=fragment):
        ExportReadyTrigger(callback_url="u", **kwargs)


# -------------------------------------------------------------------------------- waiting
async def test_one_request_per_poll_one_login_one_session(
    emulator: FollowAnalyticsEmulator, callback_url: str, sessions: list[Any]
) -> None:
    emulator.ready_after = 4

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "ready"
    assert_small_and_secret_free(event, emulator, callback_url)
    assert len(emulator.requests_for("callback")) == 5  # 4 x 202, then 200
    assert emulator.login_count == 1
    assert len(emulator.requests) == 6  # nothing else: exactly one request per poll
    assert len({id(s) for s in sessions}) == 1  # one aiohttp session for the trigger's life
    assert sessions[0].closed  # closed before the event was handed over


async def test_triggers_of_one_loop_share_one_session_and_one_login(
    emulator: FollowAnalyticsEmulator, callback_url: str, sessions: list[Any]
) -> None:
    emulator.ready_after = 3
    urls = [callback_url] + [
        FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {"fields": "current_user_id"}) for _ in range(19)
    ]
    emulator.login_count = 0

    events = await asyncio.gather(*(first_event(trigger_for(url)) for url in urls))

    assert [e["status"] for e in events] == ["ready"] * 20
    assert [e["callback_url"] for e in events] == [redact_url(url) for url in urls]
    assert emulator.login_count == 1
    assert len({id(s) for s in sessions}) == 1  # one pool for the loop, not one per trigger
    assert sessions[0].closed  # the last trigger to finish closed it
    wait_for(lambda: emulator.open_connections() == 0, message="the pooled connections to close")


def test_waits_between_polls_are_jittered_up_never_down() -> None:
    trigger = ExportReadyTrigger(callback_url="u", poll_interval=10)

    delays = [trigger._pending_delay() for _ in range(2000)]

    assert min(delays) >= 10.0  # never more than one poll per interval
    assert max(delays) <= 10.0 * (1 + POLL_JITTER)
    assert max(delays) - min(delays) > 0.5  # they really spread


async def test_ready_is_detected_without_reading_a_256_mib_body(
    emulator: FollowAnalyticsEmulator, callback_url: str
) -> None:
    emulator.export_size = 256 * 1024 * 1024

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "ready"
    assert_small_and_secret_free(event, emulator, callback_url)
    await asyncio.to_thread(wait_for, lambda: emulator.bytes_sent, 10, "the end of the 200 response")
    # The connection is dropped unread; only what loopback socket buffers absorbed was written.
    assert emulator.bytes_sent[-1] < 8 * 1024 * 1024, emulator.bytes_sent


async def test_expired_link_ends_the_wait_at_once(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    emulator.expire_after_polls = 1

    event = await first_event(trigger_for(callback_url))

    assert event["status"] == "error"
    assert event["reason"] == "expired"
    assert "HTTP 400" in event["message"]
    assert "missing, invalid or has expired" in event["message"]
    assert_small_and_secret_free(event, emulator, callback_url)
    assert len(emulator.requests_for("callback")) == 1


async def test_deadline_ends_the_wait_with_a_timeout_event(
    emulator: FollowAnalyticsEmulator, callback_url: str
) -> None:
    emulator.never_ready = True
    deadline = time.time() + 2.0

    # The deadline falls inside the first pause (6 s): a trigger that slept whole intervals would
    # end 4 s late, one that polled again at the deadline would make a second request.
    event = await first_event(trigger_for(callback_url, poll_interval=6.0, deadline=deadline))

    finished = time.time()
    assert event["status"] == "timeout"
    assert_small_and_secret_free(event, emulator, callback_url)
    assert deadline <= finished < deadline + 2.0  # room for a loaded machine's scheduling
    assert len(emulator.requests_for("callback")) == 1


async def test_a_cancel_that_meets_a_finished_poll_still_cancels(callback_url: str, mocker: Any) -> None:
    # The triggerer cancels a trigger (restart, rebalancing) in the very loop iteration its poll's
    # answer arrives. No server can time that to the iteration, so the poll itself is replaced.
    waiting: asyncio.Future[Any] | None = None
    polls = 0

    async def answer_while_being_cancelled(self: Any, url: str) -> str:
        nonlocal polls
        polls += 1
        assert waiting is not None
        waiting.cancel()
        return "pending"

    mocker.patch.object(FollowAnalyticsHook, "aget_export_status", answer_while_being_cancelled)
    waiting = asyncio.ensure_future(
        first_event(trigger_for(callback_url, poll_interval=0.05, deadline=time.time() + 5))
    )

    with pytest.raises(asyncio.CancelledError):
        await waiting  # a swallowed cancel would poll on and end with a timeout event 5 s later
    assert polls == 1


async def test_a_past_deadline_makes_no_request(emulator: FollowAnalyticsEmulator, callback_url: str) -> None:
    event = await first_event(trigger_for(callback_url, deadline=time.time() - 1))

    assert event["status"] == "timeout"
    assert emulator.requests == []


async def test_rebuilt_trigger_keeps_the_original_deadline(
    emulator: FollowAnalyticsEmulator, callback_url: str, sessions: list[Any]
) -> None:
    emulator.never_ready = True
    original = trigger_for(callback_url, poll_interval=0.05, deadline=time.time() + 4.0)
    task = asyncio.ensure_future(first_event(original))
    assert original.deadline is not None
    # Restart late in the wait (after real polls): a trigger that counted its timeout afresh
    # would then end at least three seconds after the original deadline.
    while len(emulator.requests_for("callback")) < 2 or time.time() < original.deadline - 1.0:
        await asyncio.sleep(0.01)

    task.cancel()  # the triggerer stops (restart, rebalancing)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(s.closed for s in sessions)  # cancellation closed the session too

    _classpath, kwargs = original.serialize()
    rebuilt = ExportReadyTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.deadline == original.deadline
    event = await first_event(rebuilt)

    finished = time.time()
    assert event["status"] == "timeout"
    assert original.deadline is not None
    assert original.deadline <= finished < original.deadline + 2.5  # not a fresh full timeout (>= +3 s)
    assert emulator.login_count == 1  # the rebuilt trigger reuses the process's login of this account


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
