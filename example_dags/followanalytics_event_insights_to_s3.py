"""
### Weekly event analysis and event context of an app into S3

Once a week (`@weekly`: Sundays at 00:00 UTC), two exports over the week that just ended,
Sunday 00:00 UTC to Sunday 00:00 UTC (the run's data interval):

* **Event analysis**: the app's top events → `s3://<s3_bucket>/<s3_prefix>/top-events/<app>/week-<day>.csv`.
* **Event context**: what surrounds one event, chosen by its integer id (`event_id` param; find
  it in the top events file or in the FollowAnalytics UI)
  → `s3://<s3_bucket>/<s3_prefix>/event-context/<app>/<event_id>/week-<day>.csv`.

`<day>` is the first day of the week. Periods must be whole days at midnight UTC; the data
interval of a UTC cron schedule always is. Both exports run in parallel, each waited for in the
triggerer (`deferrable=True`) and streamed to S3; a rerun overwrites its own objects.

Set up the `followanalytics_default` connection (account e-mail as login, password) and
`aws_default`; pick the app, the event and the bucket with the DAG's params.
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

from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsEventAnalysisExportOperator,
    FollowAnalyticsEventContextExportOperator,
)
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

FA_CONN = "{{ params.followanalytics_conn_id }}"
WEEK = "week-{{ data_interval_start | ds }}"  # the data interval's first day names the objects

with DAG(
    dag_id="followanalytics_event_insights_to_s3",
    description="Weekly top events and the context of one event of a FollowAnalytics app into S3",
    # The data interval is the previous week (Sunday 00:00 UTC to Sunday 00:00 UTC).
    schedule=CronDataIntervalTimetable("@weekly", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 7, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "app_identifier": Param("FAAPPLI_123456789", type="string", description="FollowAnalytics app identifier"),
        "event_id": Param(42, type="integer", minimum=1, description="Id of the event whose context to export"),
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
    # --- top events of the week -------------------------------------------------------------
    start_top_events_export = FollowAnalyticsEventAnalysisExportOperator(
        task_id="start_top_events_export",
        app_identifier="{{ params.app_identifier }}",
        # Leave both out and the API takes its default: the last 6 days.
        period_start="{{ data_interval_start }}",
        period_end="{{ data_interval_end }}",
        followanalytics_conn_id=FA_CONN,
    )
    wait_for_top_events = ExportReadySensor(
        task_id="wait_for_top_events",
        callback_url=start_top_events_export.output,
        followanalytics_conn_id=FA_CONN,
        deferrable=True,  # waits in the triggerer: no worker slot held
        poke_interval=60,
        timeout=2 * 60 * 60,
    )
    top_events_to_s3 = FollowAnalyticsToS3Operator(
        task_id="top_events_to_s3",
        callback_url=wait_for_top_events.output,
        s3_bucket="{{ params.s3_bucket }}",
        s3_key="{{ params.s3_prefix }}/top-events/{{ params.app_identifier }}/" + WEEK + ".csv",
        replace=True,
        aws_conn_id="{{ params.aws_conn_id }}",
        followanalytics_conn_id=FA_CONN,
    )
    start_top_events_export >> wait_for_top_events >> top_events_to_s3

    # --- context of one event over the same week ----------------------------------------------
    start_event_context_export = FollowAnalyticsEventContextExportOperator(
        task_id="start_event_context_export",
        app_identifier="{{ params.app_identifier }}",
        event_id="{{ params.event_id }}",  # renders as text such as "42"; the operator reads it as an integer
        period_start="{{ data_interval_start }}",
        period_end="{{ data_interval_end }}",
        followanalytics_conn_id=FA_CONN,
    )
    wait_for_event_context = ExportReadySensor(
        task_id="wait_for_event_context",
        callback_url=start_event_context_export.output,
        followanalytics_conn_id=FA_CONN,
        deferrable=True,
        poke_interval=60,
        timeout=2 * 60 * 60,
    )
    event_context_to_s3 = FollowAnalyticsToS3Operator(
        task_id="event_context_to_s3",
        callback_url=wait_for_event_context.output,
        s3_bucket="{{ params.s3_bucket }}",
        s3_key="{{ params.s3_prefix }}/event-context/{{ params.app_identifier }}/{{ params.event_id }}/"
        + WEEK
        + ".csv",
        replace=True,
        aws_conn_id="{{ params.aws_conn_id }}",
        followanalytics_conn_id=FA_CONN,
    )
    start_event_context_export >> wait_for_event_context >> event_context_to_s3
