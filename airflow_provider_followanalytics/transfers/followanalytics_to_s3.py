"""FollowAnalyticsToS3Operator: stream a ready export into Amazon S3, in bounded memory.

The upload is boto3's managed transfer (``upload_fileobj``) from the export reader, through
``S3Hook``'s client. ``boto3`` and the Amazon provider are imported when the task runs, not
when the DAG file is parsed; the provider is an optional extra
(``airflow-provider-followanalytics[amazon]``).
"""

from __future__ import annotations

import gc
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.transfers._base import (
    PACKAGE,
    FollowAnalyticsTransferOperator,
    static_value,
)
from airflow_provider_followanalytics.transfers._s3_uploads import abort_unfinished_uploads
from airflow_provider_followanalytics.transfers._streaming import MiB, content_type_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.transfers._streaming import ExportReader

S3_MIN_PART_SIZE = 5 * MiB
S3_MAX_PART_SIZE = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MiB
MAX_UPLOAD_CONCURRENCY = 16


def parse_s3_destination(s3_bucket: object, s3_key: object) -> tuple[str, str]:
    """Return ``(bucket, key)`` from ``s3_bucket`` and ``s3_key`` (a key, or a full ``s3://bucket/key``).

    :raises FollowAnalyticsConfigError: when the pair does not name one object.
    """
    if not isinstance(s3_key, str) or not s3_key.strip():
        raise FollowAnalyticsConfigError(
            f"s3_key={s3_key!r} is invalid; expected an object key such as 'exports/devices.csv' "
            "or a full URL 's3://bucket/exports/devices.csv'."
        )
    if s3_bucket is not None and not isinstance(s3_bucket, str):
        raise FollowAnalyticsConfigError(f"s3_bucket={s3_bucket!r} is invalid; expected a bucket name.")
    bucket_arg = (s3_bucket or "").strip()
    key = s3_key.strip()
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
    if "/" in bucket_arg or "://" in bucket_arg:
        raise FollowAnalyticsConfigError(
            f"s3_bucket={s3_bucket!r} is not a bucket name; give the name only (e.g. 'my-lake') and the path in s3_key."
        )
    return bucket_arg, key


def part_size_for(part_size: int, content_length: int | None) -> int:
    """``part_size``, or a larger one (whole MiB) when an export of known length needs more than 10,000 parts.

    Gzip output is counted at the export's size plus 1 %: deflate never grows data by more.
    """
    if content_length is None:
        return part_size
    needed = -(-(content_length + content_length // 100 + MiB) // S3_MAX_PARTS)
    return min(max(part_size, -(-needed // MiB) * MiB), S3_MAX_PART_SIZE)


class FollowAnalyticsToS3Operator(FollowAnalyticsTransferOperator):
    """Stream a ready FollowAnalytics export into an S3 object, in bounded memory.

    The export is read from its callback URL while boto3's managed upload sends it in parts
    (a multipart upload, ``upload_concurrency`` parts at a time): memory stays at about
    ``(upload_concurrency + 2) x part_size`` (48 MiB by default) whatever the file size, and
    the transfer runs at the speed of the slower side. An export smaller than one part is
    uploaded with a single ``PutObject``.

    Nothing half-written is ever visible: the object appears on ``CompleteMultipartUpload``
    only, once the whole export was downloaded and checked against its ``Content-Length``.
    A download that breaks off (truncated body, reset connection, read timeout) makes boto3
    abort the multipart upload, and the transfer starts again from zero, up to
    ``download_attempts`` times; if every attempt fails, the task fails and leaves neither an
    object nor an unfinished multipart upload. A failed transfer leaves an existing object
    untouched.

    A callback URL that answers 202 (not ready) fails the task, or defers it with
    ``deferrable=True``; 400 (expired link) fails it at once, without retries.

    .. code-block:: python

        upload = FollowAnalyticsToS3Operator(
            task_id="devices_to_s3",
            callback_url=ready.output,  # ExportReadySensor, or the export operator with deferrable=True
            s3_bucket="lake",
            s3_key="followanalytics/devices/{{ ds }}.csv.gz",
            gzip=True,
        )

    :param s3_key: destination key, or a full ``s3://bucket/key`` URL (templated).
    :param s3_bucket: destination bucket; leave None when ``s3_key`` is a full URL (templated).
    :param aws_conn_id: the Airflow AWS connection (templated). Its ``endpoint_url`` extra is
        honoured, so S3-compatible stores work.
    :param replace: overwrite an existing object. With False (the default) the task fails
        before downloading anything when the object exists.
    :param encrypt: ask S3 to encrypt the object at rest (``ServerSideEncryption=AES256``).
    :param acl_policy: canned ACL of the object, e.g. ``"bucket-owner-full-control"``.
    :param content_type: Content-Type of the object. Default: from the export
        (``text/csv; charset=utf-8`` or ``application/vnd.ms-excel``), or the key's suffix;
        ``application/gzip`` with ``gzip=True``.
    :param part_size: bytes per multipart part, >= 5 MiB (default 8 MiB). An export whose
        size is announced gets larger parts when it needs more than S3's 10,000.
    :param upload_concurrency: parts uploaded at the same time (default 4).
    :return: the object's URL, ``s3://bucket/key``. When bucket and key hold no Jinja, it is
        also declared as this task's outlet (an Asset / Dataset). A templated destination is
        only known at run time: pass ``outlets=[Asset("s3://lake/followanalytics/devices/")]``
        (``Dataset`` on Airflow 2) yourself if other DAGs should wait for it.

    The other arguments (``callback_url``, ``followanalytics_conn_id``, ``gzip``,
    ``gzip_level``, ``download_attempts``, ``deferrable``, ``poll_interval``,
    ``wait_timeout``) are those of every transfer (see ``FollowAnalyticsTransferOperator``).
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
        part_size: int = DEFAULT_PART_SIZE,
        upload_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(part_size, bool)
            or not isinstance(part_size, int)
            or not (S3_MIN_PART_SIZE <= part_size <= S3_MAX_PART_SIZE)
        ):
            raise FollowAnalyticsConfigError(
                f"part_size={part_size!r} is invalid; S3 parts must be from 5 MiB ({S3_MIN_PART_SIZE}) "
                f"to 5 GiB ({S3_MAX_PART_SIZE}) bytes."
            )
        if (
            isinstance(upload_concurrency, bool)
            or not isinstance(upload_concurrency, int)
            or not (1 <= upload_concurrency <= MAX_UPLOAD_CONCURRENCY)
        ):
            raise FollowAnalyticsConfigError(
                f"upload_concurrency={upload_concurrency!r} is invalid; expected an integer from 1 to "
                f"{MAX_UPLOAD_CONCURRENCY}."
            )
        super().__init__(outlet_uri=_static_uri(s3_bucket, s3_key), **kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.aws_conn_id = aws_conn_id
        self.replace = replace
        self.encrypt = encrypt
        self.acl_policy = acl_policy
        self.content_type = content_type
        self.part_size = part_size
        self.upload_concurrency = upload_concurrency

    @cached_property
    def s3_hook(self) -> Any:
        """The Amazon provider's ``S3Hook`` of ``aws_conn_id``."""
        return self.store_hook_class(aws_conn_id=self.aws_conn_id)

    def prepare(self) -> str:
        """Check the destination (and ``replace``) before anything is downloaded."""
        self._bucket, self._key = parse_s3_destination(self.s3_bucket, self.s3_key)
        uri = f"s3://{self._bucket}/{self._key}"
        if not self.replace and self.s3_hook.check_for_key(self._key, bucket_name=self._bucket):
            raise FollowAnalyticsError(
                f"{uri} already exists and replace=False; nothing was downloaded. Set replace=True to "
                "overwrite it, or template the key (e.g. with {{ ds }}) to write one object per run."
            )
        # A killed earlier attempt could not abort its own multipart upload.
        abort_unfinished_uploads(self.s3_hook.get_conn(), self._bucket, self._key, self.log)
        return uri

    def upload(self, reader: ExportReader) -> str:
        """``upload_fileobj`` from the reader; boto3 aborts the multipart upload if a read raises."""
        from boto3.s3.transfer import TransferConfig

        part_size = part_size_for(self.part_size, reader.content_length)
        config = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=self.upload_concurrency,
            use_threads=True,
        )
        # Parts read and queued or on the wire (boto3's default is 10): one more waits being read.
        config.max_in_memory_upload_chunks = self.upload_concurrency
        extra: dict[str, Any] = {
            "ContentType": self.content_type or content_type_for(reader.content_type, self._key, self.gzip)
        }
        if self.encrypt:
            extra["ServerSideEncryption"] = "AES256"
        if self.acl_policy:
            extra["ACL"] = self.acl_policy
        client = self.s3_hook.get_conn()
        client.upload_fileobj(reader, self._bucket, self._key, ExtraArgs=extra, Config=config)
        # botocore's request objects sit in reference cycles that keep the last parts' buffers
        # (up to upload_concurrency x part_size) alive until a full collection: free them now.
        gc.collect()
        stored = client.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"]
        if stored != reader.bytes_out:
            client.delete_object(Bucket=self._bucket, Key=self._key)
            raise FollowAnalyticsError(
                f"s3://{self._bucket}/{self._key} holds {stored} bytes after the upload but {reader.bytes_out} "
                "were sent; the object was deleted."
            )
        if reader.bytes_out < part_size:
            return "single PutObject"
        parts = -(-reader.bytes_out // part_size)
        return f"{parts} part{'s' if parts > 1 else ''} of {part_size // MiB} MiB"


def _static_uri(s3_bucket: object, s3_key: object) -> str | None:
    """The destination URI when it is known at DAG parse time (no Jinja, valid), else None."""
    values = [s3_key] if s3_bucket is None else [s3_bucket, s3_key]
    if not all(static_value(value) is not None for value in values):
        return None
    try:
        bucket, key = parse_s3_destination(s3_bucket, s3_key)
    except FollowAnalyticsConfigError:
        return None
    return f"s3://{bucket}/{key}"


__all__ = ["FollowAnalyticsToS3Operator", "parse_s3_destination"]
