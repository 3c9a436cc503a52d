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

Here: the network faults (the first three outcomes). The account and the wait are in
test_fault_matrix_account_and_wait.py, task retries and triggerer restarts in test_fault_matrix_restarts.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.hardening._fault_matrix import BIG, CUT, MODES, SMALL, _assert_failed_at
from tests.hardening._pipeline import (
    assert_exact_object,
    assert_nothing_written,
    fa_connection,
    run_pipeline,
    task_failure_text,
)

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")]


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
