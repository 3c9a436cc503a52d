"""Fault matrix, end to end: ``export >> ExportReadySensor >> FollowAnalyticsToS3Operator`` under faults.

Every case runs the whole pipeline with ``dag.test()`` against the emulator's fault knobs and
moto's S3 server, then checks the promise: the run either delivers the exact export (SHA-256)
or fails with a message that says what broke, and in that case leaves no object and no open
multipart upload behind. The secrets guard (tests/secrets_guard.py) checks every log of every
case for the password, auth tokens, export tokens and API keys.

Outcomes in one line each: transient bursts (5xx, 429 + Retry-After, resets) at any stage are
ridden out; a server that is down fails the stage that needed it; a download that breaks off
is restarted from zero and succeeds, or fails cleanly; an expiring token costs one login per
expiry; a dead link or a timeout fails the wait without task retries; a transfer that failed
is retried by Airflow into exactly one correct object.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger
from tests.hardening._pipeline import (
    SEGMENT_EXPORT,
    MiB,
    assert_exact_object,
    assert_nothing_written,
    fa_connection,
    run_pipeline,
    task_failure_text,
)

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")]

MODES = [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")]
SMALL = 64 * 1024  # the emulator fixture's export size
BIG = 6 * MiB  # two S3 parts of 5 MiB: when a download breaks at CUT, one part is already uploaded
CUT = 5 * MiB + 512 * 1024
DOWNSTREAM_OF = {"start_export": ("wait", "to_s3"), "wait": ("to_s3",), "to_s3": ()}


def _assert_failed_at(result: Any, task_id: str) -> None:
    """``task_id`` failed, everything after it was not run, everything before it succeeded."""
    assert result.state == "failed", result.task_states
    assert result.task_states[task_id] == "failed", result.task_states
    for downstream in DOWNSTREAM_OF[task_id]:
        assert result.task_states[downstream] == "upstream_failed", result.task_states
    before = [t for t in ("start_export", "wait") if t != task_id and t not in DOWNSTREAM_OF[task_id]]
    for upstream in before:
        assert result.task_states[upstream] == "success", result.task_states


def _no_retry_sensor_conn(set_connection: Any, emulator: FollowAnalyticsEmulator) -> str:
    """A connection whose hook does not retry: callback faults reach the sensor's own failure budget."""
    return fa_connection(set_connection, emulator.url, "fa_sensor_no_retry", max_retries=0)


# ------------------------------------------------------------------ transient faults: ridden out
@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize("kind", ["burst", "reset"], ids=["5xx-and-429", "connection-reset"])
def test_transient_faults_at_every_stage_are_ridden_out(
    emulator: FollowAnalyticsEmulator,
    set_connection: Any,
    s3_client: Any,
    s3_bucket: str,
    kind: str,
    deferrable: bool,
) -> None:
    def inject(route: str) -> None:
        if kind == "burst":  # two 503s with an HTML body, then a 429 that asks for 0.1 s
            emulator.add_fault(route, status=503, count=2)
            emulator.add_fault(route, status=429, retry_after="0.1")
        else:  # two TCP resets (before any response byte)
            emulator.add_fault(route, kind="reset", count=2)

    faults = 3 if kind == "burst" else 2
    for route in ("login", "export", "callback"):
        inject(route)

    result = run_pipeline(
        s3_bucket,
        deferrable=deferrable,
        # The sensor's hook does not retry, so the callback faults reach the sensor's (or the
        # trigger's) own failure budget; the other tasks' hooks retry 3 times.
        sensor_conn_id=_no_retry_sensor_conn(set_connection, emulator),
        max_consecutive_failures=5,
        before_transfer=lambda: inject("download"),  # the sensor's ready poll would take a download fault
    )

    assert result.state == "success", result.task_states
    assert_exact_object(s3_client, s3_bucket, SMALL)
    assert emulator.pending_faults == []
    # Each fault cost exactly one more request: retried, never given up on, never repeated.
    hooks = 4 if deferrable else 3  # one login per task (and the trigger)
    assert len(emulator.requests_for("login")) == hooks + faults
    assert len(emulator.requests_for("export")) == 1 + faults
    assert len(emulator.requests_for("callback")) == 2 + 2 * faults  # polls and downloads


# ------------------------------------------------------------------ persistent outage: clear failure
@pytest.mark.parametrize("route", ["export", "download"])
def test_persistent_503_fails_the_stage_with_the_status(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any, route: str
) -> None:
    def outage() -> None:
        emulator.add_fault(route, status=503, count=100)

    if route == "export":
        outage()
        result = run_pipeline(s3_bucket)
    else:
        result = run_pipeline(s3_bucket, before_transfer=outage)

    _assert_failed_at(result, "start_export" if route == "export" else "to_s3")
    text = task_failure_text(task_log)
    assert "HTTP 503" in text
    assert "Service Unavailable" in text  # the server's HTML error page, quoted
    assert_nothing_written(s3_client, s3_bucket)
    recorded_route = "callback" if route == "download" else route
    assert 100 - sum(f.count for f in emulator.pending_faults) == 4  # max_retries=3: four tries, then stop
    assert len(emulator.requests_for(recorded_route)) == 4 + (1 if route == "download" else 0)


# ------------------------------------------------------------------ server down: fails where needed
REFUSED = [
    pytest.param("start_export", False, "failed after 4 attempt(s)", id="before-export"),
    pytest.param("wait", False, "Gave up after 3 consecutive failed checks", id="before-wait-poke"),
    pytest.param("wait", True, "Gave up after 3 consecutive failed polls", id="before-wait-deferrable"),
    pytest.param("to_s3", False, "failed after 4 attempt(s)", id="before-transfer"),
]


@pytest.mark.parametrize(("stage", "deferrable", "phrase"), REFUSED)
def test_connection_refused_fails_the_stage_that_needs_the_server(
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    task_log: Any,
    stage: str,
    deferrable: bool,
    phrase: str,
) -> None:
    options: dict[str, Any] = {"deferrable": deferrable}
    if stage == "start_export":
        emulator.stop()
    elif stage == "wait":
        options["before_wait"] = emulator.stop
    else:
        options["before_transfer"] = emulator.stop

    result = run_pipeline(s3_bucket, **options)

    _assert_failed_at(result, stage)
    text = task_failure_text(task_log)
    assert phrase in text
    assert "Connect" in text  # ConnectionError / ClientConnectorError: the cause is named
    assert_nothing_written(s3_client, s3_bucket)


# ------------------------------------------------------------------ downloads that break off
# kind -> (fault, export size, what the message quotes). The big exports break after one 5 MiB part
# went up, so a failure must abort a real multipart upload; the small ones go up in one PutObject.
BREAKS: dict[str, tuple[dict[str, Any], int, str]] = {
    "truncate": ({"kind": "truncate", "after_bytes": CUT}, BIG, "IncompleteRead"),
    "reset_mid_body": ({"kind": "reset", "after_bytes": CUT}, BIG, "Connection reset"),
    "chunked_cut": ({"kind": "chunked_cut", "after_bytes": SMALL // 2}, SMALL, "Response ended prematurely"),
    "stalled_body": ({"kind": "delay", "after_bytes": SMALL // 2, "delay": 5.0}, SMALL, "Read timed out"),
}


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_broken_download_restarts_from_zero_or_leaves_nothing(
    emulator: FollowAnalyticsEmulator,
    set_connection: Any,
    s3_client: Any,
    s3_bucket: str,
    task_log: Any,
    kind: str,
    persistent: bool,
) -> None:
    fault, size, phrase = BREAKS[kind]
    emulator.export_size = size
    if kind == "chunked_cut":
        emulator.download_mode = "chunked"  # no Content-Length: only the missing last chunk tells
    # Two download attempts per task run, and a 0.5 s read timeout for the stalled body.
    conn_id = fa_connection(set_connection, emulator.url, "fa_breaks", timeout=0.5, max_retries=1)
    attempts = 2

    result = run_pipeline(
        s3_bucket,
        conn_id=conn_id,
        before_transfer=lambda: emulator.add_fault("download", count=attempts if persistent else 1, **fault),
    )

    downloads = len(emulator.requests_for("callback")) - 1  # minus the sensor's ready poll
    text = task_failure_text(task_log)
    assert "broke off after" in text  # the first break is reported in both outcomes
    assert phrase in text
    if persistent:
        _assert_failed_at(result, "to_s3")
        assert f"gave up after {attempts} download attempt(s); no object was written" in text
        assert_nothing_written(s3_client, s3_bucket)  # the uploaded first part was aborted
        assert downloads == attempts
    else:
        assert result.state == "success", result.task_states
        assert_exact_object(s3_client, s3_bucket, size)
        assert downloads == 2


# ------------------------------------------------------------------ the account: tokens and password
@pytest.mark.parametrize("deferrable", MODES)
def test_a_token_that_expires_after_each_use_costs_one_login_per_expiry(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, deferrable: bool
) -> None:
    emulator.token_max_uses = 1  # expires between tasks, between polls, in the middle of the wait
    emulator.ready_after = 3

    result = run_pipeline(s3_bucket, deferrable=deferrable)

    assert result.state == "success", result.task_states
    assert_exact_object(s3_client, s3_bucket, SMALL)
    # Each task's hook logs in once (and the trigger's); every request that met an expired token
    # was answered 401, cost exactly one login, and was replayed once with success. So the logins
    # are one per successful authenticated request: the export, 4 polls (3 x 202, 200), the download.
    rejected = len(emulator.requests_for("callback")) - 5
    hooks = 4 if deferrable else 3
    assert rejected >= 2
    assert emulator.login_count == len(emulator.requests_for("login")) == hooks + rejected == 1 + 4 + 1


def test_wrong_password_fails_at_the_export_and_says_so(
    emulator: FollowAnalyticsEmulator, set_connection: Any, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    wrong = "not-the-password-7f3a9c"
    conn_id = fa_connection(set_connection, emulator.url, "fa_wrong_password", password=wrong)

    result = run_pipeline(s3_bucket, conn_id=conn_id)

    _assert_failed_at(result, "start_export")
    text = task_failure_text(task_log)
    assert "HTTP 401" in text
    assert "Invalid email or password" in text
    assert wrong not in text
    assert len(emulator.requests_for("login")) == 1  # a refused login is an answer, not retried
    assert emulator.requests_for("export") == []
    assert_nothing_written(s3_client, s3_bucket)


# ------------------------------------------------------------------ the wait: timeout and dead link
@pytest.mark.parametrize("deferrable", MODES)
def test_an_export_that_never_gets_ready_times_out_without_retries(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any, deferrable: bool
) -> None:
    emulator.never_ready = True

    result = run_pipeline(s3_bucket, deferrable=deferrable, sensor_timeout=0.6, sensor_retries=2)

    _assert_failed_at(result, "wait")  # failed, not up_for_retry: waiting again cannot help
    assert "timed out" in task_failure_text(task_log)
    polls = len(emulator.requests_for("callback"))
    # At most about timeout / interval: no second try of the sensor. (How many fit in 0.6 s depends on
    # the machine's load: a busy one logs in slowly and polls once.)
    assert 1 <= polls <= 0.6 / 0.1 + 3, polls
    assert_nothing_written(s3_client, s3_bucket)


@pytest.mark.parametrize("deferrable", MODES)
def test_a_link_that_expires_mid_wait_fails_at_once_without_retries(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any, deferrable: bool
) -> None:
    emulator.ready_after = 100
    emulator.expire_after_polls = 3  # 202, 202, then 400

    result = run_pipeline(s3_bucket, deferrable=deferrable, sensor_retries=2)

    _assert_failed_at(result, "wait")
    text = task_failure_text(task_log)
    assert "HTTP 400" in text
    assert "expired" in text
    assert len(emulator.requests_for("callback")) == 3  # nothing after the 400, no task retry
    assert_nothing_written(s3_client, s3_bucket)


# ------------------------------------------------------------------ task retries
def test_a_transfer_that_fails_is_retried_into_exactly_one_object(
    emulator: FollowAnalyticsEmulator, set_connection: Any, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    # dag.test() runs task retries on Airflow 2.10 and 3.x alike (after retry_delay, 0.05 s here).
    emulator.export_size = BIG
    conn_id = fa_connection(set_connection, emulator.url, "fa_two_attempts", max_retries=1)

    result = run_pipeline(
        s3_bucket,
        conn_id=conn_id,
        transfer_retries=1,
        # every download attempt of the first try is cut after one uploaded part; the retry is clean
        before_transfer=lambda: emulator.add_fault("download", kind="truncate", after_bytes=CUT, count=2),
    )

    assert result.state == "success", result.task_states
    assert "gave up after 2 download attempt(s); no object was written" in task_failure_text(task_log)
    assert len(emulator.requests_for("callback")) - 1 == 3  # 2 broken downloads, then the retry's
    assert_exact_object(s3_client, s3_bucket, BIG)


def test_a_transfer_retry_after_the_server_came_back_succeeds(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    def server_back(context: Any) -> None:
        emulator.start()  # same port: the connection is unchanged

    result = run_pipeline(
        s3_bucket,
        transfer_retries=1,
        before_transfer=emulator.stop,
        transfer_options={"on_retry_callback": server_back},
    )

    assert result.state == "success", result.task_states
    assert "failed after 4 attempt(s)" in task_failure_text(task_log)
    assert_exact_object(s3_client, s3_bucket, SMALL)


# ------------------------------------------------------------------ triggerer restart
async def _first_event(trigger: ExportReadyTrigger) -> dict[str, Any]:
    events: AsyncIterator[Any] = trigger.run()
    event = await events.__anext__()
    payload: dict[str, Any] = event.payload
    return payload


def _rebuild(trigger: ExportReadyTrigger) -> ExportReadyTrigger:
    """What the triggerer does after a restart: import the class path, call it with the kwargs."""
    classpath, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))  # they go through the DB as JSON
    module, _, name = classpath.rpartition(".")
    rebuilt: ExportReadyTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    return rebuilt


async def _cancel_mid_wait(
    emulator: FollowAnalyticsEmulator, trigger: ExportReadyTrigger, polls: int, not_before: float = 0.0
) -> None:
    """Run the trigger until it made ``polls`` polls (and the clock passed ``not_before``), then cancel it."""
    running = asyncio.ensure_future(_first_event(trigger))
    give_up = time.monotonic() + 10
    while len(emulator.requests_for("callback")) < polls or time.time() < not_before:
        assert time.monotonic() < give_up, "the trigger did not poll"
        assert not running.done(), running.result()
        await asyncio.sleep(0.01)
    running.cancel()  # the triggerer stops: the trigger is cancelled in the middle of its wait
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert running.cancelled()


async def test_a_trigger_rebuilt_after_a_triggerer_restart_keeps_its_deadline(
    emulator: FollowAnalyticsEmulator,
) -> None:
    emulator.never_ready = True
    url = FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {})
    timeout = 4.0
    deadline = time.time() + timeout
    trigger = ExportReadyTrigger(callback_url=url, poll_interval=0.05, deadline=deadline)
    # The restart comes late in the wait: a trigger that counted its timeout afresh would wait
    # until at least deadline + 3.0 s.
    await _cancel_mid_wait(emulator, trigger, polls=3, not_before=deadline - 1.0)

    rebuilt = _rebuild(trigger)
    assert rebuilt.deadline == deadline  # absolute: a restart does not grant a new timeout
    assert not any(token in json.dumps(trigger.serialize()) for token in emulator.issued_tokens)
    event = await _first_event(rebuilt)

    assert event["status"] == "timeout", event
    assert deadline <= time.time() < deadline + 2.5  # leaves room for a loaded machine
    assert emulator.login_count == 2  # start_export (worker), then one login shared by both trigger runs


async def test_a_trigger_rebuilt_after_a_triggerer_restart_sees_the_export_ready(
    emulator: FollowAnalyticsEmulator,
) -> None:
    emulator.never_ready = True
    url = FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {})
    trigger = ExportReadyTrigger(callback_url=url, poll_interval=0.05, deadline=time.time() + 30)
    await _cancel_mid_wait(emulator, trigger, polls=2)
    emulator.never_ready = False  # the export gets ready while no triggerer runs

    event = await _first_event(_rebuild(trigger))

    assert event == {
        "status": "ready",
        "callback_url": redact_url(url),
        "message": "The export is ready (after 1 poll(s)).",
    }
