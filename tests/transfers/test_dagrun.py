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
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
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


@pytest.mark.parametrize("store", ["s3", "gcs", "file"])
def test_a_two_task_dag_defers_until_the_export_is_ready(
    emulator: FollowAnalyticsEmulator, request: pytest.FixtureRequest, tmp_path: Any, store: str
) -> None:
    """export >> transfer, no sensor: the transfer meets a 202, defers on ExportReadyTrigger, then streams."""
    size = 3 * MiB
    emulator.export_size = size
    emulator.ready_after = 2  # the transfer's own first request, then one poll of the trigger
    with _dag(f"fa_deferrable_to_{store}") as dag:
        start = FollowAnalyticsSegmentDevicesExportOperator(
            task_id="start_export", segment_id="FASEGMT_abcd12", fields=["current_user_id"]
        )
        common: dict[str, Any] = {"task_id": "transfer", "callback_url": start.output, "deferrable": True}
        if store == "s3":
            bucket = request.getfixturevalue("s3_bucket")
            transfer = FollowAnalyticsToS3Operator(
                s3_bucket=bucket, s3_key="devices/{{ ds }}.csv", poll_interval=0.05, **common
            )
            expected_url = f"s3://{bucket}/devices/2024-03-10.csv"
        elif store == "gcs":
            bucket = request.getfixturevalue("gcs_bucket")
            transfer = FollowAnalyticsToGCSOperator(
                bucket_name=bucket, object_name="devices/{{ ds }}.csv", poll_interval=0.05, **common
            )
            expected_url = f"gs://{bucket}/devices/2024-03-10.csv"
        else:
            transfer = FollowAnalyticsToObjectStorageOperator(
                destination=f"file://{tmp_path}/lake/{{{{ ds }}}}/devices.csv", poll_interval=0.05, **common
            )
            expected_url = f"file://{tmp_path}/lake/2024-03-10/devices.csv"
        start >> transfer

    result = run_dag(dag, logical_date=LOGICAL_DATE)

    assert result.state == "success", result.task_states
    assert result.xcoms["transfer"] == expected_url
    # 202 to the transfer (it deferred), 202 then 200 to the trigger, 200 to the resumed download.
    assert len(emulator.requests_for("callback")) == 4
    if store == "s3":
        body = request.getfixturevalue("s3_client").get_object(Bucket=bucket, Key="devices/2024-03-10.csv")["Body"]
        stored = sha256_of_chunks(body.iter_chunks(MiB))
    elif store == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="test-project", credentials=AnonymousCredentials())
        stored = sha256_of_chunks([client.bucket(bucket).blob("devices/2024-03-10.csv").download_as_bytes()])
    else:
        stored = sha256_of_chunks([(tmp_path / "lake" / "2024-03-10" / "devices.csv").read_bytes()])
    assert stored == (expected_export_sha256(size, "csv"), size)
