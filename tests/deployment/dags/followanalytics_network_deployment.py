"""The one-task form, deferred, over https through an authenticating proxy (connection ``followanalytics_network``).

The API's host name resolves only in the proxy, so the worker's login, export and download and the
triggerer's polls can only succeed through it, trusting the private CA of the connection's extras.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator

with DAG(
    dag_id="followanalytics_network_deployment",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"bucket": "deployment-lake"},
    tags=["followanalytics", "test"],
) as dag:
    FollowAnalyticsSegmentDevicesExportOperator(
        task_id="export_to_lake",
        followanalytics_conn_id="followanalytics_network",
        segment_id="FASEGMT_deploy1",
        destination="s3://aws_default@{{ params.bucket }}/network/{{ run_id }}.csv",
        replace=True,
        deferrable=True,
        poll_interval=1,
        wait_timeout=300,
        block_size=5 * 1024 * 1024,
    )
