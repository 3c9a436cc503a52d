"""Every example DAG, run end to end with dag.test() against the emulator, moto's S3 and the GCS emulator.

Each run uses a midnight-UTC logical date, as a daily schedule would: with the examples'
``CronDataIntervalTimetable`` the data interval is then the previous day (or week). The
emulator answers 202 to the first check of each export (``ready_after=1``), so every
``ExportReadySensor(deferrable=True)`` really defers; ``dag.test()`` runs the trigger inline.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
from collections import Counter
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from tests.dagrun import DagRunResult, run_dag
from tests.fixtures import EMAIL

pytestmark = pytest.mark.usefixtures("airflow_db", "fa_conn")

UTC = dt.timezone.utc
SUNDAY_MARCH_10 = dt.datetime(2024, 3, 10, tzinfo=UTC)  # run of the day (and week) before
DAY = 86400
MARCH_9 = 1709942400  # 2024-03-09T00:00:00Z, start of the daily data interval
MARCH_3 = MARCH_9 - 6 * DAY  # start of the weekly data interval (Sunday to Sunday)
MARCH_10 = MARCH_9 + DAY


@pytest.fixture(autouse=True)
def _exports_wait_once(emulator: FollowAnalyticsEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emulator.ready_after = 1  # the sensor's first check answers 202: it defers to the trigger
    caplog.set_level(logging.INFO)  # dag.test() logs each trigger it runs inline


def _run(dag: Any, logical_date: dt.datetime | None = SUNDAY_MARCH_10, **conf: Any) -> DagRunResult:
    result = run_dag(dag, logical_date=logical_date, run_conf=conf)
    assert result.state == "success", result.task_states
    assert set(result.task_states) == set(dag.task_ids)
    assert set(result.task_states.values()) == {"success"}, result.task_states
    return result


def _exports(emulator: FollowAnalyticsEmulator) -> list[tuple[str, dict[str, str]]]:
    return [(request.path, request.query) for request in emulator.requests_for("export")]


def _assert_each_export_waited_and_downloaded(
    emulator: FollowAnalyticsEmulator, caplog: pytest.LogCaptureFixture, exports: int
) -> None:
    """Each sensor deferred; per export: one 202 before deferring, one check in the trigger, one download.

    Only the counts are compared: the export tokens in the URLs are secrets.
    """
    deferrals = [r for r in caplog.records if "[DAG TEST] running trigger in line" in r.getMessage()]
    assert len(deferrals) == exports
    polls = Counter(request.query.get("export_token") for request in emulator.requests_for("callback"))
    assert len(polls) == exports
    assert sorted(polls.values()) == [3] * exports


def _callback_url_of(emulator: FollowAnalyticsEmulator) -> str:
    return f"{emulator.url}/api/exports/download_url?export_token="


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _s3_objects(s3_client: Any, bucket: str) -> dict[str, bytes]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listing}


# ---------------------------------------------------------------------------------------- S3


@pytest.mark.usefixtures("aws_conn")
def test_segment_devices_to_s3(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = example_dag("followanalytics_segment_devices_to_s3")

    result = _run(dag, s3_bucket=s3_bucket, segment_id="FASEGMT_test01")

    assert _exports(emulator) == [
        (
            "/segments/FASEGMT_test01/devices_export.csv",
            {"fields": "device_id,current_user_id", "updated_since": "2024-03-09T00:00:00+00:00", "skip_email": "true"},
        )
    ]
    _assert_each_export_waited_and_downloaded(emulator, caplog, 1)
    # Named after the day the data covers (data_interval_start), not the manual run's logical date.
    key = "followanalytics/segment-devices/2024-03-09.csv"
    assert result.xcoms["upload_to_s3"] == f"s3://{s3_bucket}/{key}"
    assert result.xcoms["wait_for_export"].startswith(_callback_url_of(emulator))
    objects = _s3_objects(s3_client, s3_bucket)
    assert list(objects) == [key]
    assert _sha256(objects[key]) == expected_export_sha256(emulator.export_size, "csv")


@pytest.mark.usefixtures("aws_conn", "object_store_cache")
def test_segment_devices_to_lake_in_one_task(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = example_dag("followanalytics_segment_devices_to_lake")

    result = _run(dag, destination_root=f"s3://aws_default@{s3_bucket}/followanalytics", segment_id="FASEGMT_test01")

    assert _exports(emulator) == [
        (
            "/segments/FASEGMT_test01/devices_export.csv",
            {"fields": "device_id,current_user_id", "updated_since": "2024-03-09T00:00:00+00:00", "skip_email": "true"},
        )
    ]
    _assert_each_export_waited_and_downloaded(emulator, caplog, 1)
    key = "followanalytics/segment-devices/2024-03-09.csv"
    assert result.xcoms["export_to_lake"] == f"s3://{s3_bucket}/{key}"
    objects = _s3_objects(s3_client, s3_bucket)
    assert list(objects) == [key]
    assert _sha256(objects[key]) == expected_export_sha256(emulator.export_size, "csv")
    assert s3_client.head_object(Bucket=s3_bucket, Key=key)["ContentType"] == "text/csv; charset=utf-8"


@pytest.mark.usefixtures("aws_conn")
def test_app_metrics_to_s3_exports_performance_and_user_metrics_of_each_app(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = example_dag("followanalytics_app_metrics_to_s3")
    apps = ["FAAPPLI_c3", "FAAPPLI_a1", "FAAPPLI_b2"]  # not sorted: each app's file must keep its name

    result = _run(dag, s3_bucket=s3_bucket, s3_prefix="fa", app_identifiers=apps)

    period = {"sd": str(MARCH_9), "ed": str(MARCH_10)}
    assert dict(_exports(emulator)) == {
        "/api/performance_export.csv": {"apps": ",".join(apps), **period, "skip_email": "true"},
        **{
            f"/api/apps/{app}/analytics/download_metrics.csv": {"apps": app, **period, "skip_email": "true"}
            for app in apps
        },
    }
    assert len(_exports(emulator)) == 1 + len(apps)
    _assert_each_export_waited_and_downloaded(emulator, caplog, 1 + len(apps))
    assert result.xcoms["list_apps"] == apps
    assert result.xcoms["performance_to_s3"] == f"s3://{s3_bucket}/fa/performance/2024-03-09.csv"
    objects = _s3_objects(s3_client, s3_bucket)
    assert sorted(objects) == sorted(
        ["fa/performance/2024-03-09.csv", *(f"fa/user-metrics/{app}/2024-03-09.csv" for app in apps)]
    )
    assert {key: _sha256(body) for key, body in objects.items()} == {
        key: expected_export_sha256(emulator.export_size, "csv", kind=kind)
        for key, kind in [
            ("fa/performance/2024-03-09.csv", "performance"),
            *((f"fa/user-metrics/{app}/2024-03-09.csv", "user_metrics") for app in apps),
        ]
    }


@pytest.mark.usefixtures("aws_conn")
def test_event_insights_to_s3_exports_the_week(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = example_dag("followanalytics_event_insights_to_s3")

    result = _run(dag, s3_bucket=s3_bucket, app_identifier="FAAPPLI_events7", event_id=7)

    week = {"sd": str(MARCH_3), "ed": str(MARCH_10)}  # Sunday 3 March to Sunday 10 March, UTC
    assert dict(_exports(emulator)) == {
        "/api/events_export.csv": {"app": "FAAPPLI_events7", **week, "skip_email": "true"},
        "/api/event_details_export.csv": {"app": "FAAPPLI_events7", "event_id": "7", **week, "skip_email": "true"},
    }
    assert len(_exports(emulator)) == 2
    _assert_each_export_waited_and_downloaded(emulator, caplog, 2)
    top_events = "followanalytics/top-events/FAAPPLI_events7/week-2024-03-03.csv"
    context = "followanalytics/event-context/FAAPPLI_events7/7/week-2024-03-03.csv"
    assert result.xcoms["top_events_to_s3"] == f"s3://{s3_bucket}/{top_events}"
    assert result.xcoms["event_context_to_s3"] == f"s3://{s3_bucket}/{context}"
    objects = _s3_objects(s3_client, s3_bucket)
    assert {key: _sha256(body) for key, body in objects.items()} == {
        top_events: expected_export_sha256(emulator.export_size, "csv", kind="event_analysis"),
        context: expected_export_sha256(emulator.export_size, "csv", kind="event_context"),
    }


@pytest.mark.usefixtures("aws_conn")
def test_app_devices_full_export_once_then_daily_deltas_one_object_per_day(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag_id = "followanalytics_app_devices_full_and_delta_to_s3"
    conf = {"s3_bucket": s3_bucket, "app_identifier": "FAAPPLI_dev1"}
    path = "/api/apps/FAAPPLI_dev1/devices_export.csv"
    fields = "device_id,current_user_id,last_seen_at"
    prefix = "followanalytics/app-devices/FAAPPLI_dev1"

    # 1. The one-off historical export: no updated_since.
    full = _run(example_dag(dag_id), full_export=True, **conf)
    assert _exports(emulator) == [(path, {"fields": fields, "skip_email": "true"})]
    assert full.xcoms["upload_to_s3"] == f"s3://{s3_bucket}/{prefix}/full/2024-03-09.csv"

    # 2. The next day's delta (full_export defaults to false): data interval 10 to 11 March.
    monday = SUNDAY_MARCH_10 + dt.timedelta(days=1)
    delta = _run(example_dag(dag_id), monday, **conf)
    # 3. Another run for the same data interval with another logical date (a manual trigger
    #    later that day; a scheduled run's logical date would be the interval start): the
    #    object is named after the data interval, so the same object is replaced.
    emulator.export_size += 1000  # a different file, to see that it replaced the first one
    again = _run(example_dag(dag_id), monday + dt.timedelta(hours=13, minutes=30), **conf)

    delta_query = {"fields": fields, "updated_since": "2024-03-10T00:00:00+00:00", "skip_email": "true"}
    assert _exports(emulator) == [
        (path, {"fields": fields, "skip_email": "true"}),
        (path, delta_query),
        (path, delta_query),
    ]
    _assert_each_export_waited_and_downloaded(emulator, caplog, 3)
    delta_key = f"{prefix}/delta/2024-03-10.csv"
    assert delta.xcoms["upload_to_s3"] == again.xcoms["upload_to_s3"] == f"s3://{s3_bucket}/{delta_key}"
    objects = _s3_objects(s3_client, s3_bucket)
    assert sorted(objects) == [delta_key, f"{prefix}/full/2024-03-09.csv"]
    assert _sha256(objects[delta_key]) == expected_export_sha256(emulator.export_size, "csv")
    assert _sha256(objects[f"{prefix}/full/2024-03-09.csv"]) == expected_export_sha256(
        emulator.export_size - 1000, "csv"
    )


# ---------------------------------------------------------------------------------------- GCS


def test_app_events_to_gcs_gzipped(
    example_dag: Any, emulator: FollowAnalyticsEmulator, gcs_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    dag = example_dag("followanalytics_app_events_to_gcs")

    result = _run(dag, gcs_bucket=gcs_bucket, app_identifier="FAAPPLI_ev42", gcs_prefix="raw")

    assert _exports(emulator) == [
        (
            "/api/apps/FAAPPLI_ev42/events_export.csv",
            {
                "since_date": "2024-03-09T00:00:00+00:00",
                "until_date": "2024-03-10T00:00:00+00:00",
                "skip_email": "true",
            },
        )
    ]
    _assert_each_export_waited_and_downloaded(emulator, caplog, 1)
    name = "raw/app-events/FAAPPLI_ev42/2024-03-09.csv.gz"
    assert result.xcoms["upload_to_gcs"] == f"gs://{gcs_bucket}/{name}"
    bucket = storage.Client(project="test-project", credentials=AnonymousCredentials()).bucket(gcs_bucket)
    assert [blob.name for blob in bucket.list_blobs()] == [name]
    stored = bucket.blob(name).download_as_bytes()
    assert stored[:2] == b"\x1f\x8b"  # gzip, as stored
    assert _sha256(gzip.decompress(stored)) == expected_export_sha256(emulator.export_size, "csv", kind="events")


# ---------------------------------------------------------------------------------------- Azure


def test_app_devices_to_azure_catches_up_three_failed_days_in_one_export(
    example_dag: Any,
    emulator: FollowAnalyticsEmulator,
    azure_container: str,
    azure_container_client: Any,
    object_store_cache: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag_id = "followanalytics_app_devices_to_azure"
    conf = {"container": azure_container, "app_identifier": "FAAPPLI_az1"}
    path = "/api/apps/FAAPPLI_az1/devices_export.csv"
    fields = "device_id,current_user_id,last_seen_at"
    prefix = "followanalytics/app-devices/FAAPPLI_az1"

    # 1. A good day (data interval 9 to 10 March): no earlier success, the window is the interval.
    first = _run(example_dag(dag_id), **conf)
    # 2. Three failed days: the export API refuses (an outage); nothing is written.
    emulator.add_fault("export", kind="status", status=400, count=3)
    for day in (1, 2, 3):
        failed = run_dag(example_dag(dag_id), logical_date=SUNDAY_MARCH_10 + dt.timedelta(days=day), run_conf=conf)
        assert failed.task_states["start_export"] == "failed", failed.task_states
    # 3. The next day: one export since the end of the last successful window, four days back.
    caught_up = _run(example_dag(dag_id), SUNDAY_MARCH_10 + dt.timedelta(days=4), **conf)

    exports = _exports(emulator)
    assert exports[0] == (path, {"fields": fields, "updated_since": "2024-03-09T00:00:00+00:00", "skip_email": "true"})
    assert exports[-1] == (
        path,
        {"fields": fields, "updated_since": "2024-03-10T00:00:00+00:00", "skip_email": "true"},
    )
    assert len(exports) == 5  # two that worked, three the outage refused (one each): no extra call
    _assert_each_export_waited_and_downloaded(emulator, caplog, 2)  # the transfer deferred, no sensor
    names = [f"{prefix}/2024-03-09.csv.gz", f"{prefix}/2024-03-13.csv.gz"]
    assert first.xcoms["to_azure"] == f"abfs://{azure_container}/{names[0]}"
    assert caught_up.xcoms["to_azure"] == f"abfs://{azure_container}/{names[1]}"
    assert sorted(azure_container_client.list_blob_names()) == names
    for name in names:
        stored = azure_container_client.download_blob(name).readall()
        assert _sha256(gzip.decompress(stored)) == expected_export_sha256(emulator.export_size, "csv")


# ---------------------------------------------------------------------------------------- e-mail


def test_performance_report_by_email_returns_the_servers_message(
    example_dag: Any, emulator: FollowAnalyticsEmulator
) -> None:
    dag = example_dag("followanalytics_performance_report_by_email")

    result = _run(dag, app_identifiers=["FAAPPLI_1", "FAAPPLI_2"])

    assert _exports(emulator) == [
        (
            "/api/performance_export.xls",
            {"apps": "FAAPPLI_1,FAAPPLI_2", "sd": str(MARCH_3), "ed": str(MARCH_10), "skip_email": "false"},
        )
    ]
    assert result.xcoms["email_performance_report"] == (
        f"Your report is being generated and will be sent to the email {EMAIL} when it is completed"
    )
    assert emulator.requests_for("callback") == []  # nothing to wait for or download


@pytest.mark.skipif(not AIRFLOW_V_3, reason="Airflow 2 runs always have a logical date and a data interval")
def test_a_run_without_logical_date_fails_before_any_export_request(
    example_dag: Any, emulator: FollowAnalyticsEmulator
) -> None:
    # Airflow 3 lets a manual run go without a logical date (`airflow dags trigger` without -l):
    # it then has no data interval, the period cannot be rendered, and nothing is sent.
    dag = example_dag("followanalytics_performance_report_by_email")

    result = run_dag(dag, logical_date=None)

    assert result.task_states == {"email_performance_report": "failed"}
    assert emulator.requests == []
