"""FollowAnalyticsToS3Operator against the emulator and moto's S3 server, over real sockets.

The operator uses S3Hook with the ``aws_default`` connection (endpoint_url: moto); the
tests read the bucket back with their own boto3 client.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import FollowAnalyticsError
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.transfers._s3 import PART, _keys, _multipart_uploads, _object, _operator
from tests.transfers.conftest import MiB, sha256_of_chunks


@pytest.mark.parametrize(
    ("file_format", "download_mode", "size", "etag_parts"),
    [
        pytest.param("csv", "content-length", int(2.5 * PART), 3, id="csv-content-length-3-parts"),
        pytest.param("xls", "chunked", int(2.5 * PART), 3, id="xls-chunked-3-parts"),
        pytest.param("csv", "chunked", 2 * PART, 2, id="csv-exactly-2-parts"),
        pytest.param("xls", "content-length", PART, 1, id="xls-exactly-1-part"),
        pytest.param("csv", "content-length", 64 * 1024, 0, id="csv-small-single-put"),
        pytest.param("csv", "chunked", 0, 0, id="empty-export"),
    ],
)
def test_round_trip_is_byte_exact(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    s3_client: Any,
    s3_bucket: str,
    file_format: str,
    download_mode: str,
    size: int,
    etag_parts: int,
) -> None:
    emulator.download_mode = download_mode
    url = start_export(file_format, size)
    key = f"exports/devices.{file_format}"

    result = _operator(s3_bucket, key, url).execute({})

    assert result == f"s3://{s3_bucket}/{key}"
    digest, stored, head = _object(s3_client, s3_bucket, key)
    assert (digest, stored) == (expected_export_sha256(size, file_format), size)
    expected_type = "text/csv; charset=utf-8" if file_format == "csv" else "application/vnd.ms-excel"
    assert head["ContentType"] == expected_type
    # A multipart object's ETag ends with "-<number of parts>"; a PutObject's has no dash.
    etag = head["ETag"].strip('"')
    assert (etag.rsplit("-", 1)[1] if "-" in etag else "0") == str(etag_parts)
    assert _multipart_uploads(s3_client, s3_bucket) == []
    assert len(emulator.requests_for("callback")) == 1


@pytest.mark.parametrize(
    ("file_format", "size"),
    [pytest.param("xls", int(2.2 * PART), id="xls-multipart"), pytest.param("csv", 300 * 1024, id="csv-single")],
)
def test_gzip_object_gunzips_to_the_served_bytes(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    s3_client: Any,
    s3_bucket: str,
    file_format: str,
    size: int,
) -> None:
    url = start_export(file_format, size)
    key = f"exports/devices.{file_format}.gz"

    _operator(s3_bucket, key, url, gzip=True, gzip_level=1).execute({})

    response = s3_client.get_object(Bucket=s3_bucket, Key=key)
    assert response["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in response
    with gzip.GzipFile(fileobj=response["Body"]) as unzipped:
        digest, unzipped_size = sha256_of_chunks(iter(lambda: unzipped.read(1 << 20), b""))
    assert (digest, unzipped_size) == (expected_export_sha256(size, file_format), size)
    assert _multipart_uploads(s3_client, s3_bucket) == []


def test_csv_compresses(start_export: Callable[..., str], s3_client: Any, s3_bucket: str) -> None:
    url = start_export("csv", 2 * MiB)
    _operator(s3_bucket, "d.csv.gz", url, gzip=True).execute({})
    assert s3_client.head_object(Bucket=s3_bucket, Key="d.csv.gz")["ContentLength"] < MiB


def test_explicit_content_type_encryption_and_acl(
    start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    url = start_export("csv", int(1.5 * PART))
    _operator(
        s3_bucket,
        "raw/devices",
        url,
        content_type="text/plain",
        encrypt=True,
        acl_policy="bucket-owner-full-control",
    ).execute({})

    head = s3_client.head_object(Bucket=s3_bucket, Key="raw/devices")
    assert head["ContentType"] == "text/plain"
    assert head["ServerSideEncryption"] == "AES256"
    grants = s3_client.get_object_acl(Bucket=s3_bucket, Key="raw/devices")["Grants"]
    assert any(grant["Permission"] == "FULL_CONTROL" for grant in grants)


def test_full_s3_url_as_key(start_export: Callable[..., str], s3_client: Any, s3_bucket: str) -> None:
    url = start_export("csv", 1000)
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url=url, s3_key=f"s3://{s3_bucket}/a/b.csv")
    assert operator.execute({}) == f"s3://{s3_bucket}/a/b.csv"
    assert _keys(s3_client, s3_bucket) == ["a/b.csv"]


def test_replace_false_fails_before_any_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="d.csv", Body=b"previous run")
    url = start_export("csv", 1000)

    with pytest.raises(FollowAnalyticsError, match=r"already exists and replace=False; nothing was downloaded"):
        _operator(s3_bucket, "d.csv", url).execute({})

    assert emulator.requests_for("callback") == []
    assert s3_client.get_object(Bucket=s3_bucket, Key="d.csv")["Body"].read() == b"previous run"


def test_replace_true_overwrites(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="d.csv", Body=b"previous run")
    url = start_export("csv", 1000)

    _operator(s3_bucket, "d.csv", url, replace=True).execute({})

    assert _object(s3_client, s3_bucket, "d.csv")[0] == expected_export_sha256(1000, "csv")


def test_logs_redact_the_callback_url(
    start_export: Callable[..., str], s3_bucket: str, task_log: pytest.LogCaptureFixture
) -> None:
    url = start_export("csv", 1000)
    _operator(s3_bucket, "d.csv", url).execute({})
    assert "export_token=***" in task_log.text
    assert url not in task_log.text


def test_progress_is_logged(
    start_export: Callable[..., str], s3_bucket: str, task_log: pytest.LogCaptureFixture
) -> None:
    url = start_export("csv", int(1.5 * PART))
    task_log.set_level(logging.INFO)
    _operator(s3_bucket, "d.csv", url).execute({})
    assert f"Uploaded {int(1.5 * PART)} bytes to s3://{s3_bucket}/d.csv" in task_log.text
    assert "2 parts" in task_log.text
