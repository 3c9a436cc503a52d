"""The pipeline the hardening suites break: export >> ExportReadySensor >> FollowAnalyticsToS3Operator.

Built the same way on Airflow 2.10 and 3.x and run with ``dag.test()`` (``tests.dagrun.run_dag``).
Faults that must strike one stage only are injected by a small task placed just before that stage
(``inject_before_wait``, ``inject_before_transfer``): the sensor's ready poll is itself a
"download" request for the emulator, so a download fault added up front would hit the sensor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import expected_export_sha256
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.dagrun import DagRunResult, run_dag
from tests.fixtures import EMAIL, PASSWORD

MiB = 1 << 20
KEY = "followanalytics/devices.csv"
SEGMENT_EXPORT = "/segments/FASEGMT_abcd12/devices_export"
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def dag_and_task() -> tuple[Any, Any]:
    """``DAG`` and ``task`` of the running Airflow version."""
    if AIRFLOW_V_3:
        from airflow.sdk import DAG, task
    else:
        from airflow import DAG
        from airflow.decorators import task  # type: ignore[attr-defined,no-redef,unused-ignore]
    return DAG, task


def pipeline_dag(
    bucket: str,
    *,
    key: str = KEY,
    deferrable: bool = False,
    conn_id: str = "followanalytics_default",
    sensor_conn_id: str | None = None,
    transfer_conn_id: str | None = None,
    poke_interval: float = 0.1,
    sensor_timeout: float = 20.0,
    max_consecutive_failures: int = 3,
    sensor_retries: int = 0,
    transfer_retries: int = 0,
    download_attempts: int | None = None,
    part_size: int = 5 * MiB,
    before_wait: Callable[[], None] | None = None,
    before_transfer: Callable[[], None] | None = None,
    transfer_options: dict[str, Any] | None = None,
) -> Any:
    """``start_export >> [inject_before_wait] >> wait >> [inject_before_transfer] >> to_s3``.

    :param deferrable: run the sensor deferrable (dag.test() runs its trigger inline).
    :param conn_id: FollowAnalytics connection of every task (unless ``sensor_conn_id`` /
        ``transfer_conn_id`` name another one for that task).
    :param before_wait: called by a task right before the sensor starts (e.g. stop the emulator).
    :param before_transfer: called by a task right before the transfer starts (e.g. add download faults).
    :param transfer_options: more arguments of the transfer operator (e.g. ``on_retry_callback``).
    """
    DAG, task = dag_and_task()
    retry_delay = dt.timedelta(seconds=0.05)
    with DAG(f"hardening_{uuid.uuid4().hex[:12]}", schedule=None, start_date=START, catchup=False) as dag:
        start = FollowAnalyticsSegmentDevicesExportOperator(
            task_id="start_export",
            segment_id="FASEGMT_abcd12",
            fields=["current_user_id"],
            followanalytics_conn_id=conn_id,
        )
        callback_url: Any = start.output  # an XComArg, rendered to the URL at run time
        wait = ExportReadySensor(
            task_id="wait",
            callback_url=callback_url,
            followanalytics_conn_id=sensor_conn_id or conn_id,
            deferrable=deferrable,
            poke_interval=poke_interval,
            timeout=sensor_timeout,
            max_consecutive_failures=max_consecutive_failures,
            retries=sensor_retries,
            retry_delay=retry_delay,
        )
        ready_url: Any = wait.output
        to_s3 = FollowAnalyticsToS3Operator(
            task_id="to_s3",
            callback_url=ready_url,
            s3_bucket=bucket,
            s3_key=key,
            part_size=part_size,
            download_attempts=download_attempts,
            followanalytics_conn_id=transfer_conn_id or conn_id,
            retries=transfer_retries,
            retry_delay=retry_delay,
            **(transfer_options or {}),
        )
        chain: list[Any] = [start]
        if before_wait is not None:
            chain.append(task(task_id="inject_before_wait")(before_wait)())
        chain.append(wait)
        if before_transfer is not None:
            chain.append(task(task_id="inject_before_transfer")(before_transfer)())
        chain.append(to_s3)
        for upstream, downstream in itertools.pairwise(chain):
            upstream >> downstream
    return dag


def run_pipeline(bucket: str, **options: Any) -> DagRunResult:
    """Build :func:`pipeline_dag` and run it with dag.test()."""
    return run_dag(pipeline_dag(bucket, **options))


def fa_connection(set_connection: Any, url: str, conn_id: str, *, password: str = PASSWORD, **extra: Any) -> str:
    """Define a FollowAnalytics connection to ``url`` with the given extras (fast retries by default)."""
    extra = {"timeout": 5, "max_retries": 3, "retry_delay": 0.01, **extra}
    set_connection(conn_id, conn_type="followanalytics", login=EMAIL, password=password, host=url, extra=extra)
    return conn_id


def object_sha256(s3_client: Any, bucket: str, key: str = KEY) -> tuple[str, int]:
    """SHA-256 and size of an S3 object."""
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    size = 0
    for chunk in body.iter_chunks(MiB):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def assert_exact_object(s3_client: Any, bucket: str, size: int, key: str = KEY, file_format: str = "csv") -> None:
    """The bucket holds exactly one object, ``key``, byte for byte the export; no upload left open."""
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [key], keys
    assert object_sha256(s3_client, bucket, key) == (expected_export_sha256(size, file_format), size)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def assert_nothing_written(s3_client: Any, bucket: str) -> None:
    """No object, and no multipart upload left behind (its parts would cost storage, unseen)."""
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def task_failure_text(task_log: Any) -> str:
    """Everything the run logged, exception tracebacks included (where dag.test() reports failures)."""
    return str(task_log.text)
