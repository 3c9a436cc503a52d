"""The main example's pipeline (export -> deferrable sensor -> S3) with intervals short enough for tests.

Run by tests/deployment on real scheduler, triggerer and (Airflow 3) API-server and DAG-processor
processes. Every task may be retried twice, so that "no task was retried" is a real finding.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

with DAG(
    dag_id="followanalytics_deployment",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    params={"bucket": "deployment-lake", "updated_since": "2024-06-01T00:00:00+00:00"},
    tags=["followanalytics", "test"],
) as dag:
    start_export = FollowAnalyticsSegmentDevicesExportOperator(
        task_id="start_export",
        segment_id="FASEGMT_deploy1",
        fields=["device_id", "current_user_id"],
        updated_since="{{ params.updated_since }}",
    )
    wait_for_export = ExportReadySensor(
        task_id="wait_for_export",
        callback_url=start_export.output,
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )
    upload_to_s3 = FollowAnalyticsToS3Operator(
        task_id="upload_to_s3",
        callback_url=wait_for_export.output,
        s3_bucket="{{ params.bucket }}",
        s3_key="followanalytics/{{ run_id }}.csv",
        replace=True,
    )
    start_export >> wait_for_export >> upload_to_s3
