"""
### Daily performance figures and user metrics of several apps into S3

Two exports run side by side, each over the previous day (the run's data interval, midnight
to midnight UTC, sent to the API as `sd`/`ed`):

* **Performance** (downloads, engagement, crashes): one export covers all the apps in
  `app_identifiers` → `s3://<s3_bucket>/<s3_prefix>/performance/<day>.csv`.
* **User metrics**: the API exports one app at a time, so the export, its wait and its upload
  form a task group *mapped* over the apps (one copy per app, created at run time from the
  params) → `s3://<s3_bucket>/<s3_prefix>/user-metrics/<app>/<day>.csv`.

Each export is waited for in the triggerer (`deferrable=True`) and then streamed to S3.
`replace=True` makes a rerun of the same day overwrite its own objects.

Set up the `followanalytics_default` connection (account e-mail as login, password) and
`aws_default`; pick the apps and the bucket with the DAG's params (Trigger DAG w/ config).
Needs the Amazon extra: `pip install 'airflow-provider-followanalytics[amazon]'`.
"""

from __future__ import annotations

from typing import Any

import pendulum

try:  # Airflow 3.0+
    from airflow.sdk import DAG, Param, task, task_group
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG
    from airflow.decorators import task, task_group
    from airflow.models.param import Param

# CronDataIntervalTimetable is in airflow.sdk from Airflow 3.2; 2.10 to 3.1 keep it in airflow.timetables.
try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsPerformanceExportOperator,
    FollowAnalyticsUserMetricsExportOperator,
)
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

# Whole UTC days: FollowAnalytics refuses periods that do not start and end at midnight UTC,
# and a daily UTC data interval always does.
PERIOD = {"period_start": "{{ data_interval_start }}", "period_end": "{{ data_interval_end }}"}
# Connections come from the params too, so one DAG file can serve several accounts or stores.
FA_CONN = "{{ params.followanalytics_conn_id }}"

with DAG(
    dag_id="followanalytics_app_metrics_to_s3",
    description="Daily performance figures and user metrics of FollowAnalytics apps into S3",
    # Fair use: each export API at most once a day. A data-interval timetable makes
    # data_interval_start..end cover the previous day (Airflow 3's plain "@daily" has an empty interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "app_identifiers": Param(
            ["FAAPPLI_123456789", "FAAPPLI_987654321"],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="FollowAnalytics app identifiers",
        ),
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

    @task
    def list_apps(**context: Any) -> list[str]:
        """The apps of this run (task mapping needs them as an XCom, not as a template)."""
        return list(context["params"]["app_identifiers"])

    apps = list_apps()

    # --- performance: one export for all apps ---------------------------------------------
    start_performance_export = FollowAnalyticsPerformanceExportOperator(
        task_id="start_performance_export",
        app_identifiers=apps,  # a list (XCom) or a comma string
        **PERIOD,
        followanalytics_conn_id=FA_CONN,
    )
    wait_for_performance = ExportReadySensor(
        task_id="wait_for_performance",
        callback_url=start_performance_export.output,
        followanalytics_conn_id=FA_CONN,
        deferrable=True,  # waits in the triggerer: no worker slot held
        poke_interval=60,
        timeout=2 * 60 * 60,
    )
    performance_to_s3 = FollowAnalyticsToS3Operator(
        task_id="performance_to_s3",
        callback_url=wait_for_performance.output,
        s3_bucket="{{ params.s3_bucket }}",
        # Named after the data interval's day, not {{ ds }}: a manual run's logical date is the
        # moment it was triggered, while its data interval is still the last complete day.
        s3_key="{{ params.s3_prefix }}/performance/{{ data_interval_start | ds }}.csv",
        replace=True,
        aws_conn_id="{{ params.aws_conn_id }}",
        followanalytics_conn_id=FA_CONN,
    )
    start_performance_export >> wait_for_performance >> performance_to_s3

    # --- user metrics: one export per app, a mapped task group ---------------------------
    @task_group
    def user_metrics(app_identifier: str) -> None:
        """For one app: export its user metrics, wait for the file, stream it to S3."""
        start_export = FollowAnalyticsUserMetricsExportOperator(
            task_id="start_export",
            app_identifier=app_identifier,
            **PERIOD,
            followanalytics_conn_id=FA_CONN,
        )
        wait_for_export = ExportReadySensor(
            task_id="wait_for_export",
            callback_url=start_export.output,
            followanalytics_conn_id=FA_CONN,
            deferrable=True,
            poke_interval=60,
            timeout=2 * 60 * 60,
        )
        FollowAnalyticsToS3Operator(
            task_id="upload_to_s3",
            callback_url=wait_for_export.output,
            s3_bucket="{{ params.s3_bucket }}",
            # The group's map index i is the i-th app (list_apps keeps the params' order); a
            # template cannot read the group's argument itself.
            s3_key=(
                "{{ params.s3_prefix }}/user-metrics/{{ params.app_identifiers[ti.map_index] }}/"
                "{{ data_interval_start | ds }}.csv"
            ),
            replace=True,
            aws_conn_id="{{ params.aws_conn_id }}",
            followanalytics_conn_id=FA_CONN,
        )

    # One copy of the group per app, created when the run starts; each app's upload starts
    # as soon as its own file is ready.
    user_metrics.expand(app_identifier=apps)
