"""The one-task form (an export operator with ``destination=``) with intervals short enough for tests.

Waits in the worker (not deferrable), so that a test can kill the task both while it waits and
while it streams; every retry of the task asks the export its first try started (Airflow 3.3+).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator

with DAG(
    dag_id="followanalytics_one_task_deployment",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    params={"bucket": "deployment-lake"},
    tags=["followanalytics", "test"],
) as dag:
    FollowAnalyticsSegmentDevicesExportOperator(
        task_id="export_to_lake",
        segment_id="FASEGMT_deploy1",
        fields=["device_id", "current_user_id"],
        destination="s3://aws_default@{{ params.bucket }}/one-task/{{ run_id }}.csv",
        replace=True,
        poll_interval=1,
        wait_timeout=300,
        block_size=5 * 1024 * 1024,
    )
