"""Fault matrix, end to end: the account (a token that expires, a wrong password) and the wait (an export
that never gets ready, a link that expires mid-wait).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.hardening._fault_matrix import MODES, SMALL, _assert_failed_at
from tests.hardening._pipeline import (
    assert_exact_object,
    assert_nothing_written,
    fa_connection,
    run_pipeline,
    task_failure_text,
)

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")]


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
