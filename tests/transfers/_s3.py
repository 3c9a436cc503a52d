"""What the FollowAnalyticsToS3Operator tests share: the part size, the operator, and views of moto's bucket."""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
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
