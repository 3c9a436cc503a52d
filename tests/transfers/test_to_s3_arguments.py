"""FollowAnalyticsToS3Operator's arguments: destinations parsed, bad values refused before any request, outlets."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import (
    FollowAnalyticsToS3Operator,
    parse_s3_destination,
)
from tests.transfers._s3 import PART


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
