"""Fault matrix: what comes back after a failure. Airflow's task retries of the transfer, and a trigger
rebuilt after a triggerer restart (same deadline, and it sees the export get ready).
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
from tests.hardening._fault_matrix import BIG, CUT, SMALL
from tests.hardening._pipeline import (
    SEGMENT_EXPORT,
    assert_exact_object,
    fa_connection,
    run_pipeline,
    task_failure_text,
)

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")]


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
