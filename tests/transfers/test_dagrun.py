"""The whole pipeline in a real DAG run: start export >> ExportReadySensor >> S3 and GCS transfers.

dag.test() on a SQLite metadata DB, the emulator (ready after two polls), moto's S3 server
and the GCS emulator; templated object names are rendered from the run's logical date.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_gcs import FollowAnalyticsToGCSOperator
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.dagrun import run_dag
from tests.transfers.conftest import MiB, sha256_of_chunks

pytestmark = pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn", "gcp_conn")

LOGICAL_DATE = dt.datetime(2024, 3, 10, tzinfo=dt.timezone.utc)


def _dag(dag_id: str) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    return DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), catchup=False)


def _asset_event_uris(dag_id: str) -> list[str]:
    """URIs of the asset (dataset) events the run emitted."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        target = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model

        target = Event.dataset_id
    with create_session() as session:
        rows = session.query(Model.uri).join(Event, target == Model.id).filter(Event.source_dag_id == dag_id).all()
    return sorted(row[0] for row in rows)


def test_export_wait_and_transfer_to_s3_and_gcs(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, gcs_bucket: str
) -> None:
    size = int(1.5 * 5 * MiB)  # two S3 parts of 5 MiB, several GCS chunks of 1 MiB
    emulator.export_size = size
    emulator.ready_after = 2
    dag_id = "fa_transfers_pipeline"
    with _dag(dag_id) as dag:
        start = FollowAnalyticsSegmentDevicesExportOperator(
            task_id="start_export", segment_id="FASEGMT_abcd12", fields=["current_user_id"]
        )
        ready = ExportReadySensor(task_id="wait", callback_url=start.output, poke_interval=0.05, deferrable=False)
        to_s3 = FollowAnalyticsToS3Operator(
            task_id="to_s3",
            callback_url=ready.output,
            s3_bucket=s3_bucket,
            s3_key="devices/{{ ds }}.csv",
            part_size=5 * MiB,
        )
        to_s3_static = FollowAnalyticsToS3Operator(
            task_id="to_s3_static",
            callback_url=ready.output,
            s3_key=f"s3://{s3_bucket}/devices/latest.csv.gz",
            gzip=True,
            replace=True,
        )
        to_gcs = FollowAnalyticsToGCSOperator(
            task_id="to_gcs",
            callback_url=ready.output,
            bucket_name=gcs_bucket,
            object_name="devices/{{ ds }}.csv",
            chunk_size=MiB,
        )
        start >> ready >> [to_s3, to_s3_static, to_gcs]

    if not AIRFLOW_V_3:  # dag.test() on 2.10 does not write the DAG's datasets; the DAG processor would
        dag.sync_to_db()
    result = run_dag(dag, logical_date=LOGICAL_DATE)

    assert result.state == "success", result.task_states
    assert result.xcoms["to_s3"] == f"s3://{s3_bucket}/devices/2024-03-10.csv"
    assert result.xcoms["to_s3_static"] == f"s3://{s3_bucket}/devices/latest.csv.gz"
    assert result.xcoms["to_gcs"] == f"gs://{gcs_bucket}/devices/2024-03-10.csv"
    expected = (expected_export_sha256(size, "csv"), size)
    body = s3_client.get_object(Bucket=s3_bucket, Key="devices/2024-03-10.csv")["Body"]
    assert sha256_of_chunks(body.iter_chunks(MiB)) == expected
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    blob = storage.Client(project="test-project", credentials=AnonymousCredentials()).bucket(gcs_bucket)
    assert sha256_of_chunks([blob.blob("devices/2024-03-10.csv").download_as_bytes()]) == expected
    # Three downloads of the ready file, and 202s before it: the sensor waited.
    assert len(emulator.requests_for("callback")) >= 2 + 3
    # The static destination is the task's outlet: downstream DAGs can be scheduled on it.
    assert f"s3://{s3_bucket}/devices/latest.csv.gz" in _asset_event_uris(dag_id)
