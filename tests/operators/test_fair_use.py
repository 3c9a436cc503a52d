"""The once-a-day fair-use rule: one warning when a DAG is scheduled more often, none otherwise."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from tests.dagrun import run_dag
from tests.operators._dags import make_dag

pytestmark = pytest.mark.usefixtures("fa_conn")


def fair_use_warnings(log: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno == logging.WARNING and "Fair use" in r.getMessage()]


def run_export_in(dag_id: str, schedule: Any) -> str:
    with make_dag(dag_id, schedule):
        op = FollowAnalyticsSegmentDevicesExportOperator(task_id="devices", segment_id="FASEGMT_abcd12")
    return op.execute(context={})


@pytest.mark.parametrize(
    ("schedule", "shown"),
    [
        ("@hourly", "cron '0 * * * *'"),
        ("*/30 * * * *", "cron '*/30 * * * *'"),
        (dt.timedelta(hours=6), "every 6:00:00"),
    ],
)
def test_more_than_daily_schedule_logs_one_warning_and_still_exports(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture, schedule: Any, shown: str
) -> None:
    url = run_export_in("fa_hourly_export", schedule)

    (warning,) = fair_use_warnings(task_log)
    assert f"DAG 'fa_hourly_export' is scheduled {shown}, more often than daily" in warning
    assert "at most once a day" in warning
    assert url.startswith(emulator.url)  # a warning, not a failure
    assert len(emulator.requests_for("export")) == 1


@pytest.mark.parametrize("schedule", [None, "@daily", "@weekly", "@once", dt.timedelta(days=1)])
def test_daily_or_manual_schedule_logs_no_warning(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture, schedule: Any
) -> None:
    run_export_in("fa_daily_export", schedule)

    assert fair_use_warnings(task_log) == []
    assert any("segment devices export" in r.getMessage() for r in task_log.records)  # logs were captured


def test_operator_without_dag_logs_no_warning(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture
) -> None:
    FollowAnalyticsSegmentDevicesExportOperator(task_id="devices", segment_id="FASEGMT_abcd12").execute(context={})

    assert fair_use_warnings(task_log) == []
    assert len(emulator.requests_for("export")) == 1


@pytest.mark.usefixtures("airflow_db")
def test_warning_in_a_real_hourly_dag_run(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture
) -> None:
    with make_dag("fa_hourly_dagrun", "@hourly") as dag:
        FollowAnalyticsSegmentDevicesExportOperator(task_id="devices", segment_id="FASEGMT_abcd12")

    result = run_dag(dag, logical_date=dt.datetime(2024, 3, 10, 5, tzinfo=dt.timezone.utc))

    assert result.state == "success"
    assert len(fair_use_warnings(task_log)) == 1
