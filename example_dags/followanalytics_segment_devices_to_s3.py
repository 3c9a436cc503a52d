"""
### Daily delta of a segment's devices into S3

The main pattern of this provider, one run a day:

1. **start_export** asks FollowAnalytics for the devices of a segment that changed during the
   run's data interval (`updated_since` = the interval start: a *delta* export, as the
   fair-use policy asks). With `skip_email=True` (the default) the API answers a callback URL.
2. **wait_for_export** waits for the file in the triggerer (`deferrable=True`): no worker slot
   is held while FollowAnalytics generates it.
3. **upload_to_s3** streams the file into `s3://<bucket>/<prefix>/segment-devices/<day>.csv` in
   bounded memory, named after the day the data covers (the data interval's start, the same in
   scheduled and manual runs). `replace=True` makes a rerun of the same day overwrite its own file.

Set up the `followanalytics_default` connection (account e-mail as login, password) and
`aws_default`; pick the segment and bucket with the DAG's params (Trigger DAG w/ config).
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

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

with DAG(
    dag_id="followanalytics_segment_devices_to_s3",
    description="Daily delta of a FollowAnalytics segment's devices into S3",
    # Fair use: each export API at most once a day. A data-interval timetable makes
    # data_interval_start..end cover the previous day (Airflow 3's plain "@daily" has an empty interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "segment_id": Param("FASEGMT_abcd12", type="string", description="FollowAnalytics segment identifier"),
        "s3_bucket": Param("my-data-lake", type="string", description="Destination bucket"),
        "s3_prefix": Param("followanalytics", type="string", description="Key prefix in the bucket"),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example"],
) as dag:
    start_export = FollowAnalyticsSegmentDevicesExportOperator(
        task_id="start_export",
        segment_id="{{ params.segment_id }}",
        fields=["device_id", "current_user_id"],
        updated_since="{{ data_interval_start }}",
    )

    wait_for_export = ExportReadySensor(
        task_id="wait_for_export",
        callback_url=start_export.output,
        deferrable=True,
        poke_interval=60,  # in the triggerer: one small GET a minute, no worker slot held
        timeout=2 * 60 * 60,
    )

    upload_to_s3 = FollowAnalyticsToS3Operator(
        task_id="upload_to_s3",
        callback_url=wait_for_export.output,
        s3_bucket="{{ params.s3_bucket }}",
        s3_key="{{ params.s3_prefix }}/segment-devices/{{ data_interval_start | ds }}.csv",
        replace=True,
    )

    start_export >> wait_for_export >> upload_to_s3
