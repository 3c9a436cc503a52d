"""FollowAnalyticsToS3Operator: stream a ready export into S3 with boto3's managed upload (imported at run time)."""

from __future__ import annotations

import gc
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._checks import check_int
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.hooks._destination import PACKAGE, already_exists, content_type_for
from airflow_provider_followanalytics.hooks._export_reader import MiB
from airflow_provider_followanalytics.links import S3ObjectLink
from airflow_provider_followanalytics.transfers._base import FollowAnalyticsTransferOperator, static_uri

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader

S3_MIN_PART_SIZE, S3_MAX_PART_SIZE, S3_MAX_PARTS = 5 * MiB, 5 * 1024 * MiB, 10_000


def parse_s3_destination(s3_bucket: object, s3_key: object) -> tuple[str, str]:
    """``(bucket, key)`` from ``s3_bucket`` and ``s3_key`` (a key, or a full ``s3://bucket/key``), or a config error.

    :param s3_bucket: the bucket name, or None when ``s3_key`` is a full ``s3://`` URL.
    :param s3_key: the object key, or a full ``s3://bucket/key`` URL (then ``s3_bucket`` is None or the same).
    :raises ~airflow_provider_followanalytics.exceptions.FollowAnalyticsConfigError: the two do not name
        one bucket and a key.
    """
    if not isinstance(s3_key, str) or not s3_key.strip():
        raise FollowAnalyticsConfigError(
            f"s3_key={s3_key!r} is invalid; expected an object key such as 'exports/devices.csv' "
            "or a full URL 's3://bucket/exports/devices.csv'."
        )
    if s3_bucket is not None and not isinstance(s3_bucket, str):
        raise FollowAnalyticsConfigError(f"s3_bucket={s3_bucket!r} is invalid; expected a bucket name.")
    bucket_arg, key = (s3_bucket or "").strip(), s3_key.strip()
    if key.lower().startswith("s3://"):
        bucket, _, key = key[len("s3://") :].partition("/")  # keys may hold '?' or '#': no URL parsing
        if not bucket or not key:
            raise FollowAnalyticsConfigError(
                f"s3_key={s3_key!r} is not a full S3 URL; expected 's3://bucket/path/to/object'."
            )
        if bucket_arg and bucket_arg != bucket:
            raise FollowAnalyticsConfigError(
                f"s3_key={s3_key!r} names bucket {bucket!r} but s3_bucket={s3_bucket!r}; "
                "give the bucket once (s3_bucket=None with a full s3:// key, or a plain key)."
            )
        return bucket, key
    if not bucket_arg:
        raise FollowAnalyticsConfigError(
            f"s3_bucket is missing for s3_key={s3_key!r}; give s3_bucket, or a full 's3://bucket/key' as s3_key."
        )
    if "/" in bucket_arg:  # also a URL ('s3://lake')
        raise FollowAnalyticsConfigError(
            f"s3_bucket={s3_bucket!r} is not a bucket name; give the name only (e.g. 'my-lake') and the path in s3_key."
        )
    return bucket_arg, key


def part_size_for(part_size: int, content_length: int | None) -> int:
    """``part_size``, or larger (whole MiB) for an export of announced size that needs more than 10,000 parts
    (gzip output counted at the export's size plus 1 %: deflate never grows data by more).

    :param part_size: the part size asked for, in bytes.
    :param content_length: the export's announced size in bytes, or None when not announced.
    :return: the part size to use, at most S3's largest part (5 GiB).
    """
    if content_length is None:
        return part_size
    needed = -(-(content_length + content_length // 100 + MiB) // S3_MAX_PARTS)
    return min(max(part_size, -(-needed // MiB) * MiB), S3_MAX_PART_SIZE)


class FollowAnalyticsToS3Operator(FollowAnalyticsTransferOperator):
    """Stream a ready FollowAnalytics export into an S3 object with boto3's managed multipart upload.

    Memory stays at about ``(upload_concurrency + 2) x part_size``. The object appears on
    ``CompleteMultipartUpload`` only (an export smaller than one part is one ``PutObject``).

    :param s3_key: destination key, or a full ``s3://bucket/key`` URL (templated).
    :param s3_bucket: destination bucket; None when ``s3_key`` is a full URL (templated).
    :param aws_conn_id: the Airflow AWS connection (templated); its ``endpoint_url`` extra is honoured.
    :param replace: overwrite an existing object; with False (the default) the task fails before
        downloading anything when the object exists.
    :param encrypt: ask S3 to encrypt the object at rest (``ServerSideEncryption=AES256``).
    :param acl_policy: canned ACL of the object, e.g. ``"bucket-owner-full-control"``.
    :param content_type: Content-Type of the object (default: see ``FollowAnalyticsTransferOperator``).
    :param part_size: bytes per part, >= 5 MiB (default 8 MiB; larger when an export of announced
        size needs more than S3's 10,000 parts).
    :param upload_concurrency: parts uploaded at the same time, 1-16 (default 4).
    :return: ``s3://bucket/key``.

    The other arguments are those of every transfer (``FollowAnalyticsTransferOperator``).
    """

    template_fields: Sequence[str] = (
        *FollowAnalyticsTransferOperator.template_fields,
        "s3_bucket",
        "s3_key",
        "aws_conn_id",
    )
    required_packages = (("airflow.providers.amazon", f"{PACKAGE}[amazon]"),)
    store_hook_path = ("airflow.providers.amazon.aws.hooks.s3", "S3Hook", "amazon")
    ui_color = "#ffe9c9"
    operator_extra_links = (S3ObjectLink(),)

    def __init__(
        self,
        *,
        s3_key: str,
        s3_bucket: str | None = None,
        aws_conn_id: str | None = "aws_default",
        replace: bool = False,
        encrypt: bool = False,
        acl_policy: str | None = None,
        content_type: str | None = None,
        part_size: int = 8 * MiB,
        upload_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        parts = f"from 5 MiB ({S3_MIN_PART_SIZE}) to 5 GiB ({S3_MAX_PART_SIZE}) bytes, S3's part sizes"
        check_int("part_size", part_size, S3_MIN_PART_SIZE, S3_MAX_PART_SIZE, parts)
        check_int("upload_concurrency", upload_concurrency, 1, 16, "an integer from 1 to 16")
        super().__init__(outlet_uri=static_uri("s3", parse_s3_destination, s3_bucket, s3_key), **kwargs)
        self.part_size, self.upload_concurrency = part_size, upload_concurrency
        self.s3_bucket, self.s3_key, self.aws_conn_id = s3_bucket, s3_key, aws_conn_id
        self.replace, self.encrypt, self.acl_policy, self.content_type = replace, encrypt, acl_policy, content_type

    @cached_property
    def s3_hook(self) -> Any:
        """The Amazon provider's ``S3Hook`` of ``aws_conn_id``."""
        return self.store_hook_class(aws_conn_id=self.aws_conn_id)

    def prepare(self) -> str:
        """Check the key, ``replace`` and write access before anything is downloaded."""
        self._bucket, self._key = parse_s3_destination(self.s3_bucket, self.s3_key)
        uri = f"s3://{self._bucket}/{self._key}"
        if not self.replace and self.s3_hook.check_for_key(self._key, bucket_name=self._bucket):
            raise already_exists(uri, "key")
        self._check_key(self.s3_hook.get_conn())
        return uri

    def _upload_args(self) -> dict[str, Any]:
        return {
            **({"ServerSideEncryption": "AES256"} if self.encrypt else {}),
            **({"ACL": self.acl_policy} if self.acl_policy else {}),
        }

    def _check_key(self, client: Any) -> None:
        """Start a multipart upload of the key and abort it, so that S3 answers the real upload's question
        (``s3:PutObject``, encryption and ACL included) before the download; then abort the uploads of this
        very key that an attempt killed by SIGKILL (OOM, eviction) left: one key is written by one task."""
        from botocore.exceptions import ClientError

        bucket, key = self._bucket, self._key
        try:
            upload = client.create_multipart_upload(Bucket=bucket, Key=key, **self._upload_args())
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            hint = (
                "Create the bucket, or fix the bucket name."
                if code == "NoSuchBucket"
                else f"Grant the connection's identity s3:PutObject on s3://{bucket}/*."
            )
            raise FollowAnalyticsError(
                f"Cannot write to S3 bucket {bucket!r} (key {key!r}) with connection {self.aws_conn_id!r}: "
                f"{code}: {message}. Nothing was downloaded. {hint}"
            ) from None
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key)
        orphans = [
            pending["UploadId"] for page in pages for pending in page.get("Uploads", []) if pending["Key"] == key
        ]
        for upload_id in orphans:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        if orphans:
            aborted = (
                "Aborted %d unfinished multipart upload(s) of s3://%s/%s left by an earlier attempt that was killed"
            )
            self.log.warning(aborted, len(orphans), bucket, key)

    def upload(self, reader: ExportReader) -> str:
        """``upload_fileobj`` from the reader; boto3 aborts the multipart upload if a read raises."""
        from boto3.s3.transfer import TransferConfig

        part_size = part_size_for(self.part_size, reader.content_length)
        config = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=self.upload_concurrency
        )
        # Parts read and queued or on the wire (boto3's default is 10): one more waits being read.
        config.max_in_memory_upload_chunks = self.upload_concurrency
        content_type = self.content_type or content_type_for(reader.content_type, self._key, self.gzip)
        client = self.s3_hook.get_conn()
        extra = {"ContentType": content_type, **self._upload_args()}
        client.upload_fileobj(reader, self._bucket, self._key, ExtraArgs=extra, Config=config)
        # botocore's request objects sit in reference cycles that keep the last parts' buffers
        # (up to upload_concurrency x part_size) alive until a full collection: free them now.
        gc.collect()
        stored = client.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"]
        delete = lambda: client.delete_object(Bucket=self._bucket, Key=self._key)  # noqa: E731
        self.check_stored_size(f"s3://{self._bucket}/{self._key}", stored, reader.bytes_out, delete)
        parts = -(-reader.bytes_out // part_size)
        return "single PutObject" if reader.bytes_out < part_size else f"{parts} parts of {part_size // MiB} MiB"


__all__ = ["FollowAnalyticsToS3Operator", "parse_s3_destination"]
