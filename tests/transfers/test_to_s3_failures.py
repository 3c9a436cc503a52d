"""FollowAnalyticsToS3Operator when something breaks: cut or stalled downloads, dead links, unusable buckets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AirflowFailException
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsDownloadError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsExportNotReadyError,
)
from standins.processes import StandInProcess, moto_command
from tests.fixtures import EMAIL, PASSWORD
from tests.transfers._s3 import PART, _keys, _multipart_uploads, _object, _operator

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
def read_only_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto S3 server of its own that enforces IAM, with a bucket and a user that may only read it."""
    import json
    import os

    import boto3

    # The first 4 requests (bucket, user, policy, key) are the admin's; every later one is authorized.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    output = tmp_path_factory.mktemp("read-only-s3") / "moto.log"
    with StandInProcess("moto", moto_command(), output, env) as server:
        admin = {"endpoint_url": server.url, "region_name": "us-east-1"}
        admin |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **admin).create_bucket(Bucket="read-only-bucket")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        reader_policy = {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket*", "s3:GetBucketLocation"],
            "Resource": "*",
        }
        policy = {"Version": "2012-10-17", "Statement": [reader_policy]}
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield {"endpoint_url": server.url, "login": key["AccessKeyId"], "password": key["SecretAccessKey"]}


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


def test_an_object_store_the_connection_cannot_write_fails_before_any_download(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    set_connection: Any,
    read_only_s3: dict[str, str],
    object_store_cache: dict[str, Any],
) -> None:
    from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
        FollowAnalyticsToObjectStorageOperator,
    )

    extra = {"endpoint_url": read_only_s3["endpoint_url"], "region_name": "us-east-1"}
    set_connection(
        "aws_reader", conn_type="aws", login=read_only_s3["login"], password=read_only_s3["password"], extra=extra
    )
    url = start_export("csv", 1000)
    operator = FollowAnalyticsToObjectStorageOperator(
        task_id="to_store", callback_url=url, destination="s3://aws_reader@read-only-bucket/d.csv"
    )
    with pytest.raises(
        FollowAnalyticsError, match="This connection may not write s3://read-only-bucket/d.csv"
    ) as failure:
        operator.execute({})

    assert "PermissionError: Access Denied" in str(failure.value)
    assert read_only_s3["password"] not in str(failure.value)
    assert emulator.requests_for("callback") == []  # checked before the download: the link is untouched


def test_a_one_task_export_into_a_store_it_cannot_write_sends_no_export_request(
    emulator: FollowAnalyticsEmulator, set_connection: Any, read_only_s3: dict[str, str], object_store_cache: Any
) -> None:
    from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator

    extra = {"endpoint_url": read_only_s3["endpoint_url"], "region_name": "us-east-1"}
    set_connection(
        "aws_reader", conn_type="aws", login=read_only_s3["login"], password=read_only_s3["password"], extra=extra
    )
    operator = FollowAnalyticsSegmentDevicesExportOperator(
        task_id="export_to_lake", segment_id="FASEGMT_abcd12", destination="s3://aws_reader@read-only-bucket/d.csv"
    )
    with pytest.raises(FollowAnalyticsError, match="This connection may not write s3://read-only-bucket/d.csv"):
        operator.execute({})

    assert emulator.requests_for("export") == []  # the day's one export call is not spent
    assert emulator.requests_for("login") == []
