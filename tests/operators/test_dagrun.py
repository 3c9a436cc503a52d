"""Export operators in real DAG runs (dag.test() on a SQLite metadata DB), against the emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsAppDevicesExportOperator,
    FollowAnalyticsAppEventsExportOperator,
    FollowAnalyticsEventAnalysisExportOperator,
    FollowAnalyticsPerformanceExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
    FollowAnalyticsUserMetricsExportOperator,
)
from tests.dagrun import run_dag
from tests.fixtures import EMAIL
from tests.operators._dags import cron_trigger, daily_data_intervals, make_dag

pytestmark = pytest.mark.usefixtures("airflow_db", "fa_conn")

UTC = dt.timezone.utc
MARCH_9 = 1709942400  # 2024-03-09T00:00:00Z
DAY = 86400


def _task():  # type: ignore[no-untyped-def]
    if AIRFLOW_V_3:
        from airflow.sdk import task
    else:
        from airflow.decorators import task
    return task


def test_periods_templated_from_the_data_interval_reach_the_api(emulator: FollowAnalyticsEmulator) -> None:
    task = _task()
    with make_dag("fa_exports_templated_periods", daily_data_intervals()) as dag:

        @task
        def app_list() -> list[str]:
            return ["FAAPPLI_1", "FAAPPLI_2"]

        FollowAnalyticsPerformanceExportOperator(
            task_id="performance",
            app_identifiers=app_list(),  # XComArg
            period_start="{{ data_interval_start }}",
            period_end="{{ data_interval_end }}",
        )
        FollowAnalyticsEventAnalysisExportOperator(
            task_id="top_events",
            app_identifier="FAAPPLI_1",
            period_start="{{ data_interval_start | ds }}",
            period_end="{{ data_interval_end | ds }}",
        )
        FollowAnalyticsAppEventsExportOperator(
            task_id="app_events",
            app_identifier="FAAPPLI_1",
            since_date="{{ data_interval_start }}",
            until_date="{{ data_interval_end }}",
            skip_email=False,
        )
        FollowAnalyticsAppDevicesExportOperator.partial(
            task_id="devices", updated_since="{{ data_interval_start }}"
        ).expand(app_identifier=["FAAPPLI_7", "FAAPPLI_8"])

    # A daily UTC schedule and a midnight logical date: the data interval is 9 to 10 March.
    result = run_dag(dag, logical_date=dt.datetime(2024, 3, 10, tzinfo=UTC))

    assert result.state == "success", result.task_states
    exports = {r.path: r.query for r in emulator.requests_for("export")}
    assert exports == {
        **{
            f"/api/apps/{app}/devices_export.csv": {"updated_since": "2024-03-09T00:00:00+00:00", "skip_email": "true"}
            for app in ("FAAPPLI_7", "FAAPPLI_8")
        },
        "/api/performance_export.csv": {
            "apps": "FAAPPLI_1,FAAPPLI_2",
            "sd": str(MARCH_9),
            "ed": str(MARCH_9 + DAY),
            "skip_email": "true",
        },
        "/api/events_export.csv": {
            "app": "FAAPPLI_1",
            "sd": str(MARCH_9),
            "ed": str(MARCH_9 + DAY),
            "skip_email": "true",
        },
        "/api/apps/FAAPPLI_1/events_export.csv": {
            "since_date": "2024-03-09T00:00:00+00:00",
            "until_date": "2024-03-10T00:00:00+00:00",
            "skip_email": "false",
        },
    }
    callback_prefix = f"{emulator.url}/api/exports/download_url?export_token="
    assert result.xcoms["performance"].startswith(callback_prefix)
    assert result.xcoms["top_events"].startswith(callback_prefix)
    assert result.xcoms["app_events"] == (
        f"Your report is being generated and will be sent to the email {EMAIL} when it is completed"
    )


def test_invalid_rendered_period_fails_the_task_and_sends_nothing(emulator: FollowAnalyticsEmulator) -> None:
    with make_dag("fa_exports_invalid_period", daily_data_intervals()) as dag:
        FollowAnalyticsUserMetricsExportOperator(
            task_id="metrics",
            app_identifier="FAAPPLI_1",
            period_start="{{ data_interval_start | ds }}T06:00:00+00:00",  # not midnight UTC
            period_end="{{ data_interval_end }}",
            retries=0,
        )

    result = run_dag(dag, logical_date=dt.datetime(2024, 3, 10, tzinfo=UTC))

    assert result.state == "failed"
    assert result.task_states == {"metrics": "failed"}
    assert "metrics" not in result.xcoms
    assert emulator.requests == []


def _plain_daily() -> object:
    """What a newcomer writes: ``schedule="@daily"``. On Airflow 3 that is a CronTriggerTimetable whose
    data interval is empty; Airflow 2's "@daily" has a one-day interval, so its CronTriggerTimetable
    stands in for the empty interval there."""
    return "@daily" if AIRFLOW_V_3 else cron_trigger("0 0 * * *")


def test_delta_exports_refuse_an_empty_data_interval_before_any_request(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture
) -> None:
    with make_dag("fa_exports_empty_delta", _plain_daily()) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="segment_devices", segment_id="FASEGMT_1", updated_since="{{ data_interval_start }}", retries=0
        )
        FollowAnalyticsAppEventsExportOperator(
            task_id="app_events",
            app_identifier="FAAPPLI_1",
            since_date="{{ data_interval_start }}",
            until_date="{{ data_interval_end }}",
            retries=0,
        )

    result = run_dag(dag, logical_date=dt.datetime(2024, 3, 10, tzinfo=UTC))

    assert result.state == "failed"
    assert result.task_states == {"segment_devices": "failed", "app_events": "failed"}
    assert emulator.requests == []  # not even a login
    hint = "schedule the DAG with CronDataIntervalTimetable('@daily', timezone='UTC')"
    assert (
        "updated_since='2024-03-10 00:00:00+00:00' is not before the end of this run's data interval "
        "(2024-03-10 00:00:00 UTC)" in task_log.text
    )
    assert (
        "until_date='2024-03-10 00:00:00+00:00' must be after since_date='2024-03-10 00:00:00+00:00'" in task_log.text
    )
    assert task_log.text.count(hint) >= 2


def test_wrong_password_fails_the_task_without_its_retries(
    emulator: FollowAnalyticsEmulator, set_connection: Any
) -> None:
    set_connection("fa_wrong", conn_type="followanalytics", login=EMAIL, password="wrong-pw-1234", host=emulator.url)
    with make_dag("fa_exports_wrong_password", daily_data_intervals()) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="segment_devices",
            segment_id="FASEGMT_1",
            followanalytics_conn_id="fa_wrong",
            retries=2,
            retry_delay=dt.timedelta(seconds=0),
        )

    result = run_dag(dag, logical_date=dt.datetime(2024, 3, 10, tzinfo=UTC))

    assert result.task_states == {"segment_devices": "failed"}
    assert len(emulator.requests_for("login")) == 1  # the retries would log in again with the same password
