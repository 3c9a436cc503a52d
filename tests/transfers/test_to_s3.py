"""FollowAnalyticsToS3Operator against the emulator and moto's S3 server, over real sockets.

The operator uses S3Hook with the ``aws_default`` connection (endpoint_url: moto); the
tests read the bucket back with their own boto3 client.
"""

from __future__ import annotations

import gzip
import logging
import sys
from collections.abc import Callable, Iterator
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
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import (
    FollowAnalyticsToS3Operator,
    parse_s3_destination,
)
from tests.fixtures import EMAIL, PASSWORD
from tests.transfers.conftest import MiB, sha256_of_chunks

PART = 5 * MiB  # S3's (and moto's) smallest part


def _operator(bucket: str, key: str, callback_url: str, **kwargs: Any) -> FollowAnalyticsToS3Operator:
    kwargs.setdefault("part_size", PART)
    return FollowAnalyticsToS3Operator(
        task_id="to_s3", callback_url=callback_url, s3_bucket=bucket, s3_key=key, **kwargs
    )


def _object(s3_client: Any, bucket: str, key: str) -> tuple[str, int, dict[str, Any]]:
    """sha256, size and head of an object."""
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = sha256_of_chunks(body.iter_chunks(1 << 20))
    return digest, size, s3_client.head_object(Bucket=bucket, Key=key)


def _keys(s3_client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _multipart_uploads(s3_client: Any, bucket: str) -> list[Any]:
    return s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


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


FAULTS = [
    pytest.param({"kind": "truncate", "after_bytes": int(1.5 * PART)}, id="truncated-after-a-part"),
    pytest.param({"kind": "truncate", "after_bytes": 2 * PART}, id="truncated-at-a-part-boundary"),
    pytest.param({"kind": "reset", "after_bytes": int(1.2 * PART)}, id="reset-after-a-part"),
    pytest.param({"kind": "chunked_cut", "after_bytes": int(1.5 * PART)}, id="chunked-cut-after-a-part"),
    pytest.param({"kind": "truncate", "after_bytes": 1000}, id="truncated-before-a-part"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_download_that_keeps_breaking_leaves_nothing_behind(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    s3_client: Any,
    s3_bucket: str,
    fault: dict[str, Any],
) -> None:
    url = start_export("csv", int(2.5 * PART))
    emulator.add_fault("download", count=2, **fault)

    with pytest.raises(
        FollowAnalyticsDownloadError, match=r"gave up after 2 download attempt\(s\); no object was written"
    ):
        _operator(s3_bucket, "d.csv", url, download_attempts=2).execute({})

    assert _keys(s3_client, s3_bucket) == []
    assert _multipart_uploads(s3_client, s3_bucket) == []
    assert len(emulator.requests_for("callback")) == 2


def test_a_failed_transfer_keeps_the_previous_object(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="d.csv", Body=b"previous run")
    url = start_export("csv", int(2.5 * PART))
    emulator.add_fault("download", kind="truncate", after_bytes=2 * PART + 5, count=1)

    with pytest.raises(FollowAnalyticsDownloadError):
        _operator(s3_bucket, "d.csv", url, replace=True, download_attempts=1).execute({})

    assert s3_client.get_object(Bucket=s3_bucket, Key="d.csv")["Body"].read() == b"previous run"
    assert _multipart_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"kind": "truncate", "after_bytes": int(1.5 * PART)}, id="truncate"),
        pytest.param({"kind": "reset", "after_bytes": 3000}, id="reset"),
    ],
)
def test_a_download_that_breaks_once_restarts_from_zero(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    s3_client: Any,
    s3_bucket: str,
    task_log: pytest.LogCaptureFixture,
    fault: dict[str, Any],
) -> None:
    size = int(2.5 * PART)
    url = start_export("csv", size)
    emulator.add_fault("download", count=1, **fault)

    _operator(s3_bucket, "d.csv", url).execute({})

    assert _keys(s3_client, s3_bucket) == ["d.csv"]
    assert _object(s3_client, s3_bucket, "d.csv")[:2] == (expected_export_sha256(size, "csv"), size)
    assert _multipart_uploads(s3_client, s3_bucket) == []
    assert len(emulator.requests_for("callback")) == 2
    assert "restarting the transfer from zero" in task_log.text


def test_a_read_timeout_is_a_broken_download(
    emulator: FollowAnalyticsEmulator,
    set_connection: Any,
    start_export: Callable[..., str],
    s3_client: Any,
    s3_bucket: str,
) -> None:
    set_connection(
        "followanalytics_default",
        conn_type="followanalytics",
        login=EMAIL,
        password=PASSWORD,
        host=emulator.url,
        extra={"timeout": 0.5, "max_retries": 0, "retry_delay": 0.01},
    )
    url = start_export("csv", int(1.5 * PART))
    emulator.add_fault("download", kind="delay", after_bytes=int(1.2 * PART), delay=3, count=1)

    with pytest.raises(FollowAnalyticsDownloadError, match="gave up after 1 download attempt"):
        _operator(s3_bucket, "d.csv", url).execute({})  # max_retries 0: one attempt

    assert _keys(s3_client, s3_bucket) == []
    assert _multipart_uploads(s3_client, s3_bucket) == []


def test_expired_link_fails_without_retries_and_uploads_nothing(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    url = start_export("csv", 1000)
    emulator.expire_after_polls = 1

    with pytest.raises(FollowAnalyticsExportExpiredError, match="HTTP 400.*expired") as caught:
        _operator(s3_bucket, "d.csv", url).execute({})

    assert isinstance(caught.value, AirflowFailException)  # the same link can never work again
    assert _keys(s3_client, s3_bucket) == []
    assert len(emulator.requests_for("callback")) == 1


def test_not_ready_export_fails_and_points_to_the_sensor(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_client: Any, s3_bucket: str
) -> None:
    url = start_export("csv", 1000)
    emulator.never_ready = True

    with pytest.raises(FollowAnalyticsExportNotReadyError, match="ExportReadySensor"):
        _operator(s3_bucket, "d.csv", url).execute({})

    assert _keys(s3_client, s3_bucket) == []


def test_a_missing_bucket_is_named_before_any_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], s3_bucket: str
) -> None:
    url = start_export("csv", int(2.5 * PART))
    with pytest.raises(
        FollowAnalyticsError, match=rf"bucket '{s3_bucket}-missing'.*NoSuchBucket.*Nothing was downloaded"
    ):
        _operator(f"{s3_bucket}-missing", "d.csv", url, replace=True).execute({})

    assert emulator.requests_for("callback") == []


@pytest.fixture(scope="module")
def read_only_s3() -> Iterator[dict[str, str]]:
    """A moto S3 server of its own that enforces IAM, with a bucket and a user that may only read it."""
    import json
    import os
    import re
    import subprocess

    import boto3

    # The first 4 requests (bucket, user, policy, key) are the admin's; every later one is authorized.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    server = subprocess.Popen(
        [sys.executable, "-m", "standins.servers", "moto"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        match = re.search(r"http://\S+", line)
        assert match, f"moto did not start: {line!r}"
        admin = {"endpoint_url": match.group(0), "region_name": "us-east-1"}
        admin |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **admin).create_bucket(Bucket="read-only-bucket")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        reader_policy = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket*"], "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [reader_policy]}
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield {"endpoint_url": match.group(0), "login": key["AccessKeyId"], "password": key["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_bucket_the_connection_cannot_write_fails_before_any_download(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    set_connection: Any,
    read_only_s3: dict[str, str],
) -> None:
    extra = {"endpoint_url": read_only_s3["endpoint_url"], "region_name": "us-east-1"}
    set_connection(
        "aws_reader", conn_type="aws", login=read_only_s3["login"], password=read_only_s3["password"], extra=extra
    )
    url = start_export("csv", int(2.5 * PART))

    operator = _operator("read-only-bucket", "d.csv", url, replace=True, aws_conn_id="aws_reader")
    with pytest.raises(FollowAnalyticsError) as failure:
        operator.execute({})

    message = str(failure.value)
    for fragment in ("bucket 'read-only-bucket'", "AccessDenied", "connection 'aws_reader'", "s3:PutObject"):
        assert fragment in message, message
    assert read_only_s3["password"] not in message
    assert emulator.requests_for("callback") == []  # the export link is untouched, still valid for a retry


def test_logs_redact_the_callback_url(
    start_export: Callable[..., str], s3_bucket: str, task_log: pytest.LogCaptureFixture
) -> None:
    url = start_export("csv", 1000)
    _operator(s3_bucket, "d.csv", url).execute({})
    assert "export_token=***" in task_log.text
    assert url not in task_log.text


@pytest.mark.parametrize(
    ("bucket", "key", "expected"),
    [
        ("lake", "a/b.csv", ("lake", "a/b.csv")),
        (None, "s3://lake/a/b.csv", ("lake", "a/b.csv")),
        ("lake", "s3://lake/a/b.csv", ("lake", "a/b.csv")),
        ("", "S3://lake/a/b.csv", ("lake", "a/b.csv")),
    ],
)
def test_parse_destination(bucket: str | None, key: str, expected: tuple[str, str]) -> None:
    assert parse_s3_destination(bucket, key) == expected


@pytest.mark.parametrize(
    ("bucket", "key", "fragment"),
    [
        (None, "a/b.csv", "s3_bucket is missing for s3_key='a/b.csv'"),
        ("other", "s3://lake/a.csv", "names bucket 'lake' but s3_bucket='other'"),
        (None, "s3://lake", "not a full S3 URL"),
        ("lake", "", "s3_key='' is invalid"),
        ("s3://lake", "a.csv", "not a bucket name"),
    ],
)
def test_bad_destinations_fail_before_any_request(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    aws_conn: str,
    bucket: str | None,
    key: str,
    fragment: str,
) -> None:
    url = start_export("csv", 1000)
    emulator.requests.clear()
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url=url, s3_bucket=bucket, s3_key=key)
    with pytest.raises(FollowAnalyticsConfigError, match=fragment.replace("(", r"\(")):
        operator.execute({})
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"part_size": PART - 1}, "part_size=5242879 is invalid"),
        ({"part_size": "8MiB"}, "part_size='8MiB' is not an integer"),
        ({"upload_concurrency": 0}, "upload_concurrency=0 is invalid"),
        ({"gzip_level": 10}, "gzip_level=10 is invalid"),
        ({"download_attempts": 0}, "download_attempts=0 is invalid"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FollowAnalyticsConfigError, match=fragment):
        FollowAnalyticsToS3Operator(task_id="t", callback_url="x", s3_bucket="lake", s3_key="k", **kwargs)


def test_foreign_callback_host_is_refused_before_any_request(
    emulator: FollowAnalyticsEmulator, fa_conn: dict[str, Any], aws_conn: str
) -> None:
    operator = FollowAnalyticsToS3Operator(
        task_id="t",
        callback_url="https://files.example.net/api/exports/download_url?export_token=foreign-123",
        s3_bucket="lake",
        s3_key="k",
    )
    with pytest.raises(FollowAnalyticsConfigError, match="not on the connection's host") as caught:
        operator.execute({})
    assert "foreign-123" not in str(caught.value)
    assert emulator.requests == []


def test_static_destination_is_declared_as_an_outlet() -> None:
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url="x", s3_key="s3://lake/devices.csv")
    assert [outlet.uri for outlet in operator.outlets] == ["s3://lake/devices.csv"]
    expected_class = "Asset" if AIRFLOW_V_3 else "Dataset"
    assert type(operator.outlets[0]).__name__ == expected_class


def test_templated_destination_has_no_parse_time_outlet() -> None:
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url="x", s3_bucket="lake", s3_key="d/{{ ds }}.csv")
    assert operator.outlets == []


def test_templated_fields() -> None:
    assert set(FollowAnalyticsToS3Operator.template_fields) >= {
        "callback_url",
        "s3_bucket",
        "s3_key",
        "aws_conn_id",
        "followanalytics_conn_id",
    }


def test_missing_amazon_provider_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch, fa_conn: dict[str, Any]
) -> None:
    # No local server can uninstall a package: hide it from the import system instead.
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.s3", None)
    operator = FollowAnalyticsToS3Operator(task_id="t", callback_url="x", s3_bucket="lake", s3_key="k")
    with pytest.raises(FollowAnalyticsError, match=r"pip install 'airflow-provider-followanalytics\[amazon\]'"):
        operator.execute({})


def test_progress_is_logged(
    start_export: Callable[..., str], s3_bucket: str, task_log: pytest.LogCaptureFixture
) -> None:
    url = start_export("csv", int(1.5 * PART))
    task_log.set_level(logging.INFO)
    _operator(s3_bucket, "d.csv", url).execute({})
    assert f"Uploaded {int(1.5 * PART)} bytes to s3://{s3_bucket}/d.csv" in task_log.text
    assert "2 parts" in task_log.text
