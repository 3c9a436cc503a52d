"""
### An app's devices into S3: one full export, then daily deltas

FollowAnalytics' fair-use policy: at most one export per API a day, and after one optional
*full* historical export, only *deltas* (`updated_since`). This DAG does both with the same
three tasks; the `full_export` param switches between them:

| run | `updated_since` | object under `<s3_prefix>/app-devices/<app>/` |
|---|---|---|
| daily, scheduled (`full_export` false) | data interval start | `delta/<day>.csv` |
| once, by hand with `{"full_export": true}` | not sent: all devices | `full/<day>.csv` |

**Getting started**: trigger the DAG once with config `{"full_export": true}` and load that file;
the daily runs then bring the devices that changed. A delta holds the devices updated since
its day began (until the export ran), so consecutive files overlap a little and never leave a
gap: load them in date order and upsert by `device_id`.

**Reruns and backfills**: objects are named after the data interval's day and `replace=True`,
so rerunning a day (Clear) overwrites that day's file. To fill missed days, backfill the DAG
(`airflow backfill create` on Airflow 3, `airflow dags backfill` on Airflow 2): one run, one
export and one file per day, one day at a time (`max_active_runs=1`). `updated_since` has no
upper bound, so a backfilled day's file holds every device changed since that day, and each
backfilled day is one more call of the export API: for gaps of more than a few days, a new
full export is cheaper for both sides.

Set up the `followanalytics_default` connection (account e-mail as login, password) and
`aws_default`; pick the app and bucket with the DAG's params.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3.0+
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG
    from airflow.models.param import Param

# CronDataIntervalTimetable is in airflow.sdk from Airflow 3.2; 2.10 to 3.1 keep it in airflow.timetables.
try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsAppDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

FA_CONN = "{{ params.followanalytics_conn_id }}"

with DAG(
    dag_id="followanalytics_app_devices_full_and_delta_to_s3",
    description="One full export of a FollowAnalytics app's devices into S3, then daily deltas",
    # Fair use: each export API at most once a day. A data-interval timetable makes
    # data_interval_start..end cover the previous day (Airflow 3's plain "@daily" has an empty interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,  # fill gaps with an explicit backfill (see above), never by accident
    max_active_runs=1,  # a backfill then calls the API one day at a time
    params={
        "full_export": Param(
            False,
            type="boolean",
            description="Export every device (the one-off historical export) instead of the day's delta",
        ),
        "app_identifier": Param("FAAPPLI_123456789", type="string", description="FollowAnalytics app identifier"),
        "s3_bucket": Param("my-data-lake", type="string", description="Destination bucket"),
        "s3_prefix": Param("followanalytics", type="string", description="Key prefix in the bucket"),
        "followanalytics_conn_id": Param(
            "followanalytics_default", type="string", description="FollowAnalytics connection"
        ),
        "aws_conn_id": Param("aws_default", type="string", description="AWS connection"),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example", "s3"],
) as dag:
    start_export = FollowAnalyticsAppDevicesExportOperator(
        task_id="start_export",
        app_identifier="{{ params.app_identifier }}",
        fields=["device_id", "current_user_id", "last_seen_at"],
        # An empty value leaves updated_since out of the request: the full export.
        updated_since="{{ '' if params.full_export else data_interval_start }}",
        followanalytics_conn_id=FA_CONN,
    )

    wait_for_export = ExportReadySensor(
        task_id="wait_for_export",
        callback_url=start_export.output,
        followanalytics_conn_id=FA_CONN,
        deferrable=True,  # waits in the triggerer: no worker slot held
        poke_interval=60,
        # A full export of a large app takes longer to generate than a day's delta.
        timeout=6 * 60 * 60,
    )

    upload_to_s3 = FollowAnalyticsToS3Operator(
        task_id="upload_to_s3",
        callback_url=wait_for_export.output,
        s3_bucket="{{ params.s3_bucket }}",
        # Named after the data interval's day, not {{ ds }}: a manual run's logical date is the
        # moment it was triggered, while its data interval is still the last complete day.
        s3_key=(
            "{{ params.s3_prefix }}/app-devices/{{ params.app_identifier }}/"
            "{{ 'full' if params.full_export else 'delta' }}/{{ data_interval_start | ds }}.csv"
        ),
        replace=True,  # a rerun of the same day overwrites its own file
        aws_conn_id="{{ params.aws_conn_id }}",
        followanalytics_conn_id=FA_CONN,
    )

    start_export >> wait_for_export >> upload_to_s3
