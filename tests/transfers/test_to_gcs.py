"""FollowAnalyticsToGCSOperator against the emulator and the GCS emulator, over real sockets.

The operator uses GCSHook with the anonymous ``google_cloud_default`` connection
(STORAGE_EMULATOR_HOST points the client at gcp-storage-emulator); the tests read the
bucket back with their own client.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3, AirflowFailException
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsExportNotReadyError,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_gcs import FollowAnalyticsToGCSOperator
from tests.transfers.conftest import MiB, sha256_of_chunks

CHUNK = 256 * 1024  # the smallest resumable chunk: several chunks per test export


@pytest.fixture
def gcs(gcs_bucket: str) -> Any:
    """The test's bucket, through a client of the test's own (anonymous, on the emulator)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test-project", credentials=AnonymousCredentials()).bucket(gcs_bucket)


def _operator(bucket: str, name: str, callback_url: str, **kwargs: Any) -> FollowAnalyticsToGCSOperator:
    kwargs.setdefault("chunk_size", CHUNK)
    return FollowAnalyticsToGCSOperator(
        task_id="to_gcs", callback_url=callback_url, bucket_name=bucket, object_name=name, **kwargs
    )


def _names(gcs: Any) -> list[str]:
    return [blob.name for blob in gcs.client.list_blobs(gcs.name)]


def _content(gcs: Any, name: str) -> tuple[str, int, Any]:
    blob = gcs.get_blob(name)
    digest, size = sha256_of_chunks([blob.download_as_bytes()])
    return digest, size, blob


@pytest.mark.parametrize(
    ("file_format", "download_mode", "size"),
    [
        pytest.param("csv", "content-length", int(2.5 * CHUNK), id="csv-content-length-3-chunks"),
        pytest.param("xls", "chunked", int(2.5 * CHUNK), id="xls-chunked-3-chunks"),
        pytest.param("csv", "chunked", 2 * CHUNK, id="csv-exactly-2-chunks"),
        pytest.param("xls", "content-length", 1000, id="xls-small"),
        pytest.param("csv", "content-length", 0, id="empty-export"),
    ],
)
def test_round_trip_is_byte_exact(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    gcs: Any,
    file_format: str,
    download_mode: str,
    size: int,
) -> None:
    emulator.download_mode = download_mode
    url = start_export(file_format, size)
    name = f"exports/devices.{file_format}"

    result = _operator(gcs.name, name, url).execute({})

    assert result == f"gs://{gcs.name}/{name}"
    digest, stored, blob = _content(gcs, name)
    assert (digest, stored) == (expected_export_sha256(size, file_format), size)
    expected_type = "text/csv; charset=utf-8" if file_format == "csv" else "application/vnd.ms-excel"
    assert blob.content_type == expected_type
    assert len(emulator.requests_for("callback")) == 1


def test_gzip_object_gunzips_to_the_served_bytes(start_export: Callable[..., str], gcs: Any) -> None:
    size = 3 * CHUNK
    url = start_export("xls", size)  # random bytes: the gzip output still spans several chunks

    _operator(gcs.name, "devices.xls.gz", url, gzip=True, gzip_level=1).execute({})

    blob = gcs.get_blob("devices.xls.gz")
    assert blob.content_type == "application/gzip"
    assert blob.content_encoding is None  # stored as a .gz file: GCS must not transcode it
    assert blob.size > 2 * CHUNK
    assert sha256_of_chunks([gzip.decompress(blob.download_as_bytes())]) == (
        expected_export_sha256(size, "xls"),
        size,
    )


def test_mime_type_overrides(start_export: Callable[..., str], gcs: Any) -> None:
    url = start_export("csv", 1000)
    _operator(gcs.name, "d", url, mime_type="text/plain").execute({})
    assert gcs.get_blob("d").content_type == "text/plain"


def test_existing_object_is_replaced(start_export: Callable[..., str], gcs: Any) -> None:
    gcs.blob("d.csv").upload_from_string(b"previous run")
    url = start_export("csv", 1000)
    _operator(gcs.name, "d.csv", url).execute({})
    assert _content(gcs, "d.csv")[0] == expected_export_sha256(1000, "csv")


FAULTS = [
    pytest.param({"kind": "truncate", "after_bytes": int(1.5 * CHUNK)}, id="truncated-after-a-chunk"),
    pytest.param({"kind": "truncate", "after_bytes": 2 * CHUNK}, id="truncated-at-a-chunk-boundary"),
    pytest.param({"kind": "reset", "after_bytes": int(1.2 * CHUNK)}, id="reset-after-a-chunk"),
    pytest.param({"kind": "chunked_cut", "after_bytes": int(1.5 * CHUNK)}, id="chunked-cut-after-a-chunk"),
    pytest.param({"kind": "truncate", "after_bytes": 100}, id="truncated-before-a-chunk"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_download_that_keeps_breaking_leaves_nothing_behind(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any, fault: dict[str, Any]
) -> None:
    url = start_export("csv", int(2.5 * CHUNK))
    emulator.add_fault("download", count=2, **fault)

    with pytest.raises(
        FollowAnalyticsDownloadError, match=r"gave up after 2 download attempt\(s\); no object was written"
    ):
        _operator(gcs.name, "d.csv", url, download_attempts=2).execute({})

    assert _names(gcs) == []
    assert len(emulator.requests_for("callback")) == 2


def test_a_failed_transfer_keeps_the_previous_object(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any
) -> None:
    gcs.blob("d.csv").upload_from_string(b"previous run")
    url = start_export("csv", int(2.5 * CHUNK))
    emulator.add_fault("download", kind="truncate", after_bytes=2 * CHUNK + 5, count=1)

    with pytest.raises(FollowAnalyticsDownloadError):
        _operator(gcs.name, "d.csv", url, download_attempts=1).execute({})

    assert gcs.blob("d.csv").download_as_bytes() == b"previous run"


def test_a_download_that_breaks_once_restarts_from_zero(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    gcs: Any,
    task_log: pytest.LogCaptureFixture,
) -> None:
    size = int(2.5 * CHUNK)
    url = start_export("csv", size)
    emulator.add_fault("download", kind="truncate", after_bytes=int(1.5 * CHUNK), count=1)

    _operator(gcs.name, "d.csv", url).execute({})

    assert _names(gcs) == ["d.csv"]
    assert _content(gcs, "d.csv")[:2] == (expected_export_sha256(size, "csv"), size)
    assert len(emulator.requests_for("callback")) == 2
    assert "restarting the transfer from zero" in task_log.text


def test_expired_link_fails_without_retries_and_uploads_nothing(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any
) -> None:
    url = start_export("csv", 1000)
    emulator.expire_after_polls = 1

    with pytest.raises(FollowAnalyticsExportExpiredError, match="HTTP 400.*expired") as caught:
        _operator(gcs.name, "d.csv", url).execute({})

    assert isinstance(caught.value, AirflowFailException)
    assert _names(gcs) == []


def test_not_ready_export_fails_and_points_to_the_sensor(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any
) -> None:
    url = start_export("csv", 1000)
    emulator.never_ready = True

    with pytest.raises(FollowAnalyticsExportNotReadyError, match="ExportReadySensor"):
        _operator(gcs.name, "d.csv", url).execute({})

    assert _names(gcs) == []


def test_gcs_errors_stop_the_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any
) -> None:
    from google.api_core.exceptions import NotFound

    url = start_export("csv", 4 * MiB)
    with pytest.raises(NotFound):
        _operator(f"{gcs.name}-missing", "d.csv", url).execute({})
    assert _names(gcs) == []


def test_a_bucket_the_connection_cannot_write_fails_before_any_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], gcs: Any, mocker: Any
) -> None:
    from google.cloud.storage import Bucket

    # The emulator grants every permission it is asked about; a read-only identity is not there to be had.
    asked = mocker.patch.object(Bucket, "test_iam_permissions", autospec=True, return_value=[])
    url = start_export("csv", 4 * MiB)

    with pytest.raises(FollowAnalyticsError, match=rf"GCS bucket '{gcs.name}'.*lacks storage.objects.create"):
        _operator(gcs.name, "d.csv", url).execute({})

    assert asked.call_args.args[1] == ["storage.objects.create"]
    assert emulator.requests_for("callback") == []
    assert _names(gcs) == []


def test_logs_redact_the_callback_url(
    start_export: Callable[..., str], gcs: Any, task_log: pytest.LogCaptureFixture
) -> None:
    url = start_export("csv", 1000)
    _operator(gcs.name, "d.csv", url).execute({})
    assert "export_token=***" in task_log.text
    assert url not in task_log.text
    assert f"Uploaded 1000 bytes to gs://{gcs.name}/d.csv" in task_log.text


@pytest.mark.parametrize(
    ("bucket", "name", "fragment"),
    [
        ("gs://lake", "a.csv", "bucket_name='gs://lake' is invalid"),
        ("", "a.csv", "bucket_name='' is invalid"),
        ("lake", " ", "object_name=' ' is invalid"),
    ],
)
def test_bad_destinations_fail_before_any_request(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    gcp_conn: str,
    bucket: str,
    name: str,
    fragment: str,
) -> None:
    url = start_export("csv", 1000)
    emulator.requests.clear()
    with pytest.raises(FollowAnalyticsConfigError, match=fragment):
        FollowAnalyticsToGCSOperator(task_id="t", callback_url=url, bucket_name=bucket, object_name=name).execute({})
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"chunk_size": 100_000}, "chunk_size=100000 is invalid"),
        ({"chunk_size": 0}, "chunk_size=0 is invalid"),
        ({"gzip_level": -2}, "gzip_level=-2 is invalid"),
        ({"download_attempts": "3"}, "download_attempts='3' is not an integer"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FollowAnalyticsConfigError, match=fragment):
        FollowAnalyticsToGCSOperator(task_id="t", callback_url="x", bucket_name="lake", object_name="o", **kwargs)


def test_static_destination_is_declared_as_an_outlet() -> None:
    operator = FollowAnalyticsToGCSOperator(task_id="t", callback_url="x", bucket_name="lake", object_name="d.csv")
    assert [outlet.uri for outlet in operator.outlets] == ["gs://lake/d.csv"]
    assert type(operator.outlets[0]).__name__ == ("Asset" if AIRFLOW_V_3 else "Dataset")


def test_templated_destination_has_no_parse_time_outlet() -> None:
    operator = FollowAnalyticsToGCSOperator(
        task_id="t", callback_url="x", bucket_name="lake", object_name="{{ ds }}/d.csv"
    )
    assert operator.outlets == []


def test_templated_fields() -> None:
    assert set(FollowAnalyticsToGCSOperator.template_fields) >= {
        "callback_url",
        "bucket_name",
        "object_name",
        "gcp_conn_id",
        "followanalytics_conn_id",
        "impersonation_chain",
    }


def test_missing_google_provider_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch, fa_conn: dict[str, Any]
) -> None:
    # No local server can uninstall a package: hide it from the import system instead.
    monkeypatch.setitem(sys.modules, "airflow.providers.google.cloud.hooks.gcs", None)
    operator = FollowAnalyticsToGCSOperator(task_id="t", callback_url="x", bucket_name="lake", object_name="o")
    with pytest.raises(FollowAnalyticsError, match=r"pip install 'airflow-provider-followanalytics\[google\]'"):
        operator.execute({})
