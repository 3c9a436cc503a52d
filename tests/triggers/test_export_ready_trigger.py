"""ExportReadyTrigger.run() driven directly with asyncio against the emulator (real sockets): serialization, waiting."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest

from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.triggers.export_ready import POLL_JITTER, ExportReadyTrigger
from tests.fixtures import wait_for
from tests.triggers._support import SEGMENT_EXPORT, assert_small_and_secret_free, first_event, trigger_for

pytestmark = pytest.mark.usefixtures("fa_conn")


CLASSPATH = "airflow_provider_followanalytics.triggers.export_ready.ExportReadyTrigger"


def test_repr_hides_the_export_token() -> None:
    # Airflow 2's triggerer logs repr(trigger) into the task log when it starts the trigger.
    trigger = ExportReadyTrigger(callback_url="http://127.0.0.1:1/api/exports/download_url?export_token=s3cr3t")

    assert "s3cr3t" not in repr(trigger)
    assert "export_token=***" in repr(trigger)


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
