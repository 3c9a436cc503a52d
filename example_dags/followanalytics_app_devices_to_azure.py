"""
### An app's devices into Azure Blob Storage: daily deltas that catch up missed days in one export

Two tasks, no sensor: `start_export` asks FollowAnalytics for the devices updated since the
**end of the last successful run's data interval**, and the transfer (`deferrable=True`) waits
for the export in the triggerer, then streams it, gzipped, into Azure Blob Storage / ADLS Gen2
through `FollowAnalyticsToObjectStorageOperator` (an `abfs://` ObjectStoragePath).

| run | `updated_since` | blob |
|---|---|---|
| first run | its data interval start | `<prefix>/app-devices/<app>/<day>.csv.gz` |
| after a successful day | that run's data interval end (= this run's start) | the day's delta |
| after three failed days | the end of the last successful day, four days back | one file with all four days |

**Missed days cost one export, not one each**: FollowAnalytics' fair-use policy allows each
export API once a day. When runs fail (an outage, an expired link), do not clear or backfill
them: the next scheduled run exports everything changed since the last success in one call.
A delta holds the devices updated since its window began (until the export ran): load the
files in date order and upsert by `device_id`. Clear a failed `to_azure` task alone only while
its export link is still valid (same day); clearing `start_export` starts a new export.

Set up the `followanalytics_default` connection (account e-mail as login, password) and an
Azure connection (`wasb` type; e.g. its `connection_string` extra); pick app, container and
prefix with the DAG's params. Nothing half-written ever appears in the container: the blob is
committed only once the whole export was downloaded.
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
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)

FA_CONN = "{{ params.followanalytics_conn_id }}"

with DAG(
    dag_id="followanalytics_app_devices_to_azure",
    description="Daily deltas of a FollowAnalytics app's devices into Azure Blob Storage, catching up missed days",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),  # fair use: once a day
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,  # missed days are caught up by the next run's window, not by one run each
    max_active_runs=1,
    params={
        "app_identifier": Param("FAAPPLI_123456789", type="string", description="FollowAnalytics app identifier"),
        "container": Param("lake", type="string", description="Azure Blob container (or ADLS file system)"),
        "prefix": Param("followanalytics", type="string", description="Path prefix in the container"),
        "azure_conn_id": Param("wasb_default", type="string", description="Azure (wasb) connection"),
        "followanalytics_conn_id": Param(
            "followanalytics_default", type="string", description="FollowAnalytics connection"
        ),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example", "azure"],
) as dag:
    start_export = FollowAnalyticsAppDevicesExportOperator(
        task_id="start_export",
        app_identifier="{{ params.app_identifier }}",
        fields=["device_id", "current_user_id", "last_seen_at"],
        # Since the last successful run's window ended: after failed days, one export covers them all.
        updated_since="{{ prev_data_interval_end_success or data_interval_start }}",
        followanalytics_conn_id=FA_CONN,
    )

    to_azure = FollowAnalyticsToObjectStorageOperator(
        task_id="to_azure",
        callback_url=start_export.output,
        destination=(
            "abfs://{{ params.azure_conn_id }}@{{ params.container }}/{{ params.prefix }}/app-devices/"
            "{{ params.app_identifier }}/{{ data_interval_start | ds }}.csv.gz"
        ),
        gzip=True,
        replace=True,  # a rerun of the same day overwrites its own file
        deferrable=True,  # waits for the export in the triggerer: no sensor, no worker slot held
        poll_interval=60,
        followanalytics_conn_id=FA_CONN,
    )

    start_export >> to_azure
