"""
### Daily delta of a segment's devices into the lake, in one task

The one-task form of the main pattern, one run a day. **export_to_lake**:

1. checks the destination before any FollowAnalytics request (the bucket exists, the connection
   may write to it, a rerun of the same day may overwrite its own file with `replace=True`): a
   mistake there never costs the day's one export call;
2. asks FollowAnalytics for the devices of a segment that changed during the run's data interval
   (`updated_since` = the interval start: a *delta* export, as the fair-use policy asks);
3. waits for the file in the triggerer (`deferrable=True`: no worker slot held meanwhile);
4. streams it into `<destination_root>/segment-devices/<day>.csv` in bounded memory, named after
   the day the data covers; a broken download starts again from zero, nothing partial is left.

On Airflow 3.3+ a retry of the task first asks the export its earlier try started and reuses it
while it is good; before 3.3 a retry starts a new export. When the wait should be a task of its own
(its own timeout, pool or alerting), see `followanalytics_segment_devices_to_s3` (three tasks).

Set up the `followanalytics_default` connection (account e-mail as login, password) and the
store's (`aws_default` for `s3://aws_default@bucket/...`); pick the segment and the destination
with the DAG's params (Trigger DAG w/ config).
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

with DAG(
    dag_id="followanalytics_segment_devices_to_lake",
    description="Daily delta of a FollowAnalytics segment's devices into the lake, in one task",
    # Fair use: each export API at most once a day. A data-interval timetable makes
    # data_interval_start..end cover the previous day (Airflow 3's plain "@daily" has an empty interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "segment_id": Param("FASEGMT_abcd12", type="string", description="FollowAnalytics segment identifier"),
        "destination_root": Param(
            "s3://aws_default@my-data-lake/followanalytics",
            type="string",
            description="Where the files go: s3://conn@bucket/prefix, gs://..., abfs://..., file:///folder",
        ),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example"],
) as dag:
    export_to_lake = FollowAnalyticsSegmentDevicesExportOperator(
        task_id="export_to_lake",
        segment_id="{{ params.segment_id }}",
        fields=["device_id", "current_user_id"],
        updated_since="{{ data_interval_start }}",
        destination="{{ params.destination_root }}/segment-devices/{{ data_interval_start | ds }}.csv",
        replace=True,
        deferrable=True,
        poll_interval=60,  # in the triggerer: one small GET a minute
        wait_timeout=2 * 60 * 60,
    )
