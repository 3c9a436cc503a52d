"""The DAG of the lineage test: export >> three transfers (S3, Azure, a local file), and an events export
(quoted newlines in its body) into a local file, run in a child process.

Where it writes comes from the environment the test sets (``FA_LINEAGE_*``), as do the connections
(emulator, moto, Azurite).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsAppEventsExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator

if AIRFLOW_V_3:
    from airflow.sdk import DAG
else:
    from airflow import DAG  # type: ignore[no-redef]

with DAG(
    dag_id="followanalytics_transfer_lineage",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    schedule=None,
    catchup=False,
) as dag:
    start = FollowAnalyticsSegmentDevicesExportOperator(
        task_id="start_export", segment_id="FASEGMT_abcd12", fields=["device_id"]
    )
    ready = {"callback_url": start.output, "deferrable": True, "poll_interval": 0.05}
    start >> [
        FollowAnalyticsToS3Operator(
            task_id="to_s3", s3_bucket=os.environ.get("FA_LINEAGE_S3_BUCKET", "lake"), s3_key="devices.csv", **ready
        ),
        FollowAnalyticsToObjectStorageOperator(
            task_id="to_azure",
            destination=f"abfs://wasb_default@{os.environ.get('FA_LINEAGE_AZURE_CONTAINER', 'lake')}/fa/devices.csv",
            **ready,
        ),
        FollowAnalyticsToObjectStorageOperator(
            task_id="to_file",
            destination=f"file://{os.environ.get('FA_LINEAGE_LOCAL_DIR', '/tmp')}/devices.csv",
            **ready,
        ),
    ]
    events = FollowAnalyticsAppEventsExportOperator(
        task_id="start_events_export",
        app_identifier="FAAPPLI_123456789",
        since_date="2026-01-01T00:00:00Z",
        until_date="2026-01-02T00:00:00Z",
    )
    events >> FollowAnalyticsToObjectStorageOperator(
        task_id="events_to_file",
        callback_url=events.output,
        destination=f"file://{os.environ.get('FA_LINEAGE_LOCAL_DIR', '/tmp')}/events.csv",
        deferrable=True,
        poll_interval=0.05,
    )
