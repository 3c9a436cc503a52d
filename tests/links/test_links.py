"""Operator extra links to the object written, read the way the UI reads them, after real ``dag.test()`` runs.

Every store: the one-task export and ``FollowAnalyticsToObjectStorageOperator`` into a local folder (no
link), the GCS emulator, moto's S3 and Azurite; ``FollowAnalyticsToS3Operator`` and
``FollowAnalyticsToGCSOperator``. Airflow 3 reads the links through the API server's route from the XCom
the task kept; Airflow 2.10 through the webserver's ``task.get_extra_links(ti, name)`` (tests/links/_ui.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.links import (
    AzureBlobLink,
    GCSObjectLink,
    S3ObjectLink,
    links_for,
    persist_destination_link,
)
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.transfers.followanalytics_to_gcs import FollowAnalyticsToGCSOperator
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.dagrun import run_dag
from tests.links._ui import ui_links
from tests.transfers._object_stores import AzureStore, GCSStore, S3Store, Store

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
MiB = 1 << 20
NAME = "devices/2024 01/export.csv"  # a space: percent-encoded in the links ("#" too, below)
ENCODED = "devices/2024%2001/export.csv"


def _dag(dag_id: str) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def _expected(store: Store, azurite_url: str | None = None) -> dict[str, str | None]:
    """The links the UI shows for ``NAME`` written to ``store``: one for its console, none for a local file."""
    if isinstance(store, S3Store):
        return {"S3 object": f"https://s3.console.aws.amazon.com/s3/object/{store.bucket}?prefix={ENCODED}"}
    if isinstance(store, GCSStore):
        url = f"https://console.cloud.google.com/storage/browser/_details/{store.bucket.name}/{ENCODED}"
        return {"GCS object": url}
    if isinstance(store, AzureStore):
        return {"Azure blob": f"{azurite_url}/devstoreaccount1/{store.container.container_name}/{ENCODED}"}
    return {}


def _azurite_url(store: Store, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("azurite").url if isinstance(store, AzureStore) else None


@pytest.mark.usefixtures("airflow_db", "fa_conn")
def test_one_task_export_links_to_the_object_it_wrote(
    emulator: FollowAnalyticsEmulator, store: Store, request: pytest.FixtureRequest
) -> None:
    emulator.ready_after = 1
    with _dag(f"links_one_task_{store.name}") as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_lake",
            segment_id="FASEGMT_abcd12",
            destination=store.url(NAME),
            poll_interval=0.05,
            block_size=5 * MiB,
        )
        FollowAnalyticsSegmentDevicesExportOperator(task_id="start_only", segment_id="FASEGMT_abcd12")

    result = run_dag(dag)

    assert result.state == "success", result.task_states
    assert store.read(NAME) is not None
    assert ui_links(dag, "export_to_lake") == _expected(store, _azurite_url(store, request))
    assert ui_links(dag, "start_only") == {}  # no destination: no link


@pytest.mark.usefixtures("airflow_db")
def test_object_storage_transfer_links_to_the_object_it_wrote(
    start_export: Callable[..., str], store: Store, request: pytest.FixtureRequest
) -> None:
    with _dag(f"links_object_storage_{store.name}") as dag:
        FollowAnalyticsToObjectStorageOperator(
            task_id="to_store", callback_url=start_export("csv", 1000), destination=store.url(NAME)
        )

    result = run_dag(dag)

    assert result.state == "success", result.task_states
    assert ui_links(dag, "to_store") == _expected(store, _azurite_url(store, request))


@pytest.mark.usefixtures("airflow_db", "aws_conn", "gcp_conn")
def test_s3_and_gcs_transfers_link_to_their_objects(
    start_export: Callable[..., str], s3_bucket: str, gcs_bucket: str
) -> None:
    callback_url = start_export("csv", 1000)
    with _dag("links_s3_gcs") as dag:
        FollowAnalyticsToS3Operator(task_id="to_s3", callback_url=callback_url, s3_bucket=s3_bucket, s3_key=NAME)
        FollowAnalyticsToGCSOperator(
            task_id="to_gcs", callback_url=callback_url, bucket_name=gcs_bucket, object_name="{{ ds }}/" + NAME
        )

    result = run_dag(dag, logical_date=START)

    assert result.state == "success", result.task_states
    assert ui_links(dag, "to_s3") == {
        "S3 object": f"https://s3.console.aws.amazon.com/s3/object/{s3_bucket}?prefix={ENCODED}"
    }
    assert ui_links(dag, "to_gcs") == {
        "GCS object": f"https://console.cloud.google.com/storage/browser/_details/{gcs_bucket}/2024-01-01/{ENCODED}"
    }


@pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")
def test_deferred_tasks_keep_the_link_when_they_resume(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_bucket: str
) -> None:
    callback_url = start_export("csv", 1000)
    emulator.ready_after = 2  # the transfer and the one-task export both defer, then write in execute_complete
    with _dag("links_deferred") as dag:
        FollowAnalyticsToS3Operator(
            task_id="to_s3",
            callback_url=callback_url,
            s3_bucket=s3_bucket,
            s3_key="t.csv",
            deferrable=True,
            poll_interval=0.05,
        )
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_s3",
            segment_id="FASEGMT_abcd12",
            destination=f"s3://aws_default@{s3_bucket}/e.csv",
            deferrable=True,
            poll_interval=0.05,
            block_size=5 * MiB,
        )

    result = run_dag(dag)

    assert result.state == "success", result.task_states
    assert len(emulator.requests_for("callback")) > 2  # both waited (202) before they wrote
    console = f"https://s3.console.aws.amazon.com/s3/object/{s3_bucket}?prefix="
    assert ui_links(dag, "to_s3") == {"S3 object": console + "t.csv"}
    assert ui_links(dag, "export_to_s3") == {"S3 object": console + "e.csv"}


@pytest.mark.usefixtures("airflow_db", "aws_conn")
def test_a_failed_write_has_no_link(start_export: Callable[..., str], s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="taken.csv", Body=b"x")  # replace=False: the task fails first
    with _dag("links_failed") as dag:
        FollowAnalyticsToS3Operator(
            task_id="to_s3", callback_url=start_export("csv", 1000), s3_bucket=s3_bucket, s3_key="taken.csv"
        )

    result = run_dag(dag)

    assert result.task_states["to_s3"] == "failed"
    assert ui_links(dag, "to_s3") == {"S3 object": None}


def test_links_follow_the_destination_store() -> None:
    names = {
        url: [link.name for link in links_for(url)]
        for url in (
            "s3://aws_default@lake/x.csv",
            "gs://bucket/x.csv",
            "abfs://wasb_default@container/x.csv",
            "wasb://container/x.csv",
            "file:///data/x.csv",
            "{{ var.value.lake }}/x.csv",
            None,
        )
    }
    assert names == {
        "s3://aws_default@lake/x.csv": ["S3 object"],
        "gs://bucket/x.csv": ["GCS object"],
        "abfs://wasb_default@container/x.csv": ["Azure blob"],
        "wasb://container/x.csv": ["Azure blob"],
        "file:///data/x.csv": [],
        "{{ var.value.lake }}/x.csv": ["S3 object", "GCS object", "Azure blob"],  # the store is known at run time
        None: [],
    }


def test_link_urls_drop_the_user_and_never_keep_a_query() -> None:
    assert S3ObjectLink().url_of("s3://aws_conn@lake/a b/c?d#e") == (
        "https://s3.console.aws.amazon.com/s3/object/lake?prefix=a%20b/c%3Fd%23e"
    )
    assert GCSObjectLink().url_of("gs://google_cloud_default@bucket/a/b c.csv") == (
        "https://console.cloud.google.com/storage/browser/_details/bucket/a/b%20c.csv"
    )
    assert S3ObjectLink().url_of("s3://lake/") == ""  # no object, no link

    class Client:
        url = "https://me:pw@acct.blob.core.windows.net/?sv=2024&sig=SECRET"

    class Path:
        fs = type("FS", (), {"service_client": Client(), "account_name": "acct"})()

    url = AzureBlobLink().url_of("abfs://container/dir/x y.csv", Path())
    assert url == "https://acct.blob.core.windows.net/container/dir/x%20y.csv"
    assert AzureBlobLink().url_of("abfs://container/x.csv") == ""  # account unknown: no link
    assert AzureBlobLink().url_of("abfss://container@acct.dfs.core.windows.net/x.csv") == (
        "https://acct.blob.core.windows.net/container/x.csv"
    )


def test_persist_without_a_task_instance_keeps_the_link_in_the_task_only() -> None:
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url="x", s3_bucket="lake", s3_key="k.csv")
    url = persist_destination_link({}, operator, "s3://lake/k.csv")
    assert url == "https://s3.console.aws.amazon.com/s3/object/lake?prefix=k.csv"
    assert S3ObjectLink().get_link(operator, ti_key=None) == url
