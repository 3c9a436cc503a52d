"""FollowAnalyticsToS3Operator: stream a ready export into Amazon S3, in bounded memory.

``boto3`` and the Amazon provider are imported when the task runs, not when the DAG file
is parsed; the provider is an optional extra (``airflow-provider-followanalytics[amazon]``).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._compat import BaseOperator, lineage_uri_object
from airflow_provider_followanalytics._rendering import MasksCallbackUrl
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.transfers._s3_uploads import abort_unfinished_uploads
from airflow_provider_followanalytics.transfers._streaming import (
    MiB,
    check_download_attempts,
    check_gzip_level,
    content_type_for,
    describe_rate,
    describe_size,
    gzip_chunks,
    iter_blocks,
    transfer_with_restarts,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Sequence
    from concurrent.futures import Future

    from airflow.sdk import Context  # type hints only (Airflow 2 has the same mapping type)

    from airflow_provider_followanalytics.hooks.followanalytics import ExportStream

S3_MIN_PART_SIZE = 5 * MiB
S3_MAX_PART_SIZE = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MiB
#: The part size doubles every this many parts, so an export of unknown size still fits in
#: S3's 10,000 parts: 8 MiB parts carry ~20 GiB, then 16 MiB parts the next ~40 GiB, and so on.
PARTS_PER_SIZE_STEP = 2_500
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


def _static_uri(s3_bucket: object, s3_key: object) -> str | None:
    """The destination URI when it is known at DAG parse time (no Jinja, valid), else None."""
    values = [s3_key] if s3_bucket is None else [s3_bucket, s3_key]
    if not all(isinstance(value, str) and "{{" not in value and "{%" not in value for value in values):
        return None
    try:
        bucket, key = parse_s3_destination(s3_bucket, s3_key)
    except FollowAnalyticsConfigError:
        return None
    return f"s3://{bucket}/{key}"


def _s3_hook_class() -> Any:
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError as exc:
        raise FollowAnalyticsError(
            "FollowAnalyticsToS3Operator needs the Amazon provider (apache-airflow-providers-amazon): "
            "pip install 'airflow-provider-followanalytics[amazon]'"
        ) from exc
    return S3Hook


def _part_sizes(first: int) -> Iterator[int]:
    """Size of part 1, 2, ...: ``first``, doubling every :data:`PARTS_PER_SIZE_STEP` parts."""
    for index in itertools.count():
        yield min(first << (index // PARTS_PER_SIZE_STEP), S3_MAX_PART_SIZE)


@dataclass
class TransferResult:
    """What one successful attempt moved: bytes uploaded (after gzip), bytes downloaded, parts."""

    uploaded: int
    downloaded: int
    parts: int


class MultipartUpload:
    """One S3 multipart upload whose parts go up in a small thread pool.

    Parts are uploaded while the caller downloads the next one; :meth:`add_part` waits
    while ``concurrency`` parts are on their way, which bounds memory. Nothing is visible in
    the bucket until :meth:`complete`; :meth:`abort` discards the parts already sent.

    :param client: a boto3 S3 client (thread-safe; shared by the part uploads).
    :param bucket: destination bucket.
    :param key: destination key.
    :param object_args: arguments of ``CreateMultipartUpload`` (ContentType, ACL, encryption).
    :param concurrency: parts uploaded at the same time.
    :param log: where to report an abort that failed.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        object_args: dict[str, Any],
        concurrency: int,
        log: logging.Logger | Any,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._object_args = object_args
        self._concurrency = concurrency
        self._log = log
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="followanalytics-s3-part")
        self._pending: set[Future[tuple[dict[str, Any], int]]] = set()
        self._parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.bytes_uploaded = 0
        # Like boto3's own transfer manager: with botocore's default "when_supported" checksums,
        # create the upload with CRC32 so each part's checksum is verified and recorded.
        config = getattr(getattr(client, "meta", None), "config", None)
        when_supported = getattr(config, "request_checksum_calculation", None) == "when_supported"
        self._checksum: str | None = "CRC32" if when_supported else None

    @property
    def part_count(self) -> int:
        """Parts uploaded so far."""
        return len(self._parts)

    def add_part(self, number: int, body: bytearray) -> None:
        """Upload part ``number`` in the background; wait for a free slot first (raises a failed part's error)."""
        if self.upload_id is None:
            args = dict(self._object_args)
            if self._checksum:
                args["ChecksumAlgorithm"] = self._checksum
            response = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key, **args)
            self.upload_id = response["UploadId"]
        while len(self._pending) >= self._concurrency:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending.add(self._executor.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytearray) -> tuple[dict[str, Any], int]:
        args = {"ChecksumAlgorithm": self._checksum} if self._checksum else {}
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self.upload_id, PartNumber=number, Body=body, **args
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        checksum_field = f"Checksum{self._checksum}" if self._checksum else None
        if checksum_field and checksum_field in response:
            part[checksum_field] = response[checksum_field]
        return part, len(body)

    def _collect(self, done: set[Future[tuple[dict[str, Any], int]]]) -> None:
        self._pending -= done
        for future in done:
            part, size = future.result()  # re-raises the part's error in the caller's thread
            self._parts.append(part)
            self.bytes_uploaded += size

    def complete(self) -> None:
        """Wait for the parts in flight, then make the object appear (CompleteMultipartUpload)."""
        self._collect(wait(self._pending).done)
        parts = sorted(self._parts, key=lambda part: part["PartNumber"])
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )

    def abort(self) -> None:
        """Discard the upload: stop queued parts, let parts on the wire end, then AbortMultipartUpload.

        Waiting first matters: a part that finishes after the abort could otherwise survive it
        and keep costing storage.
        """
        for future in self._pending:
            future.cancel()
        wait(self._pending)
        self._pending.clear()
        if self.upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self.upload_id)
        except Exception as exc:
            self._log.error(
                "Could not abort multipart upload %s of s3://%s/%s (%s: %s); abort it with "
                "'aws s3api abort-multipart-upload' or let a lifecycle rule "
                "(AbortIncompleteMultipartUpload) remove it.",
                self.upload_id,
                self._bucket,
                self._key,
                type(exc).__name__,
                exc,
            )
        else:
            self._log.info("Aborted multipart upload of s3://%s/%s: no object was written.", self._bucket, self._key)

    def close(self) -> None:
        """Stop the part upload threads."""
        self._executor.shutdown(wait=True)


class FollowAnalyticsToS3Operator(MasksCallbackUrl, BaseOperator):
    """Stream a ready FollowAnalytics export into an S3 object, in bounded memory.

    The export is downloaded from its callback URL and uploaded to S3 at the same time: the
    file goes up in parts (a multipart upload) while the next part downloads, so memory
    stays at about ``(upload_concurrency + 1) x part_size`` (40 MiB by default) whatever the
    file size, and the transfer runs at the speed of the slower side. An export smaller
    than one part is uploaded with a single ``PutObject``.

    Nothing half-written is ever visible: the object appears only once the whole export
    was downloaded, checked against its ``Content-Length``, and uploaded. A download that
    breaks off (truncated body, reset connection, read timeout) discards the multipart
    upload and starts again from zero, up to ``download_attempts`` times; if every attempt
    fails, the task fails and leaves neither an object nor an unfinished multipart upload.

    The export must be ready: put an ``ExportReadySensor`` before this task. A callback
    URL that answers 202 (not ready) or 400 (expired link) fails the task at once.

    .. code-block:: python

        upload = FollowAnalyticsToS3Operator(
            task_id="devices_to_s3",
            callback_url=ready.output,  # ExportReadySensor, or the export operator
            s3_bucket="lake",
            s3_key="followanalytics/devices/{{ ds }}.csv.gz",
            gzip=True,
        )

    :param callback_url: the export's callback URL, as returned by an export operator or
        ``ExportReadySensor`` (templated; usually ``ready.output``).
    :param s3_key: destination key, or a full ``s3://bucket/key`` URL (templated).
    :param s3_bucket: destination bucket; leave None when ``s3_key`` is a full URL (templated).
    :param aws_conn_id: the Airflow AWS connection (templated). Its ``endpoint_url`` extra is
        honoured, so S3-compatible stores work.
    :param replace: overwrite an existing object. With False (the default) the task fails
        before downloading anything when the object exists.
    :param gzip: compress on the fly; the object is then one gzip member that decompresses to
        the exact export, stored with Content-Type ``application/gzip`` (name it ``.gz``).
    :param gzip_level: zlib compression level, 0-9 (default 6).
    :param encrypt: ask S3 to encrypt the object at rest (``ServerSideEncryption=AES256``).
    :param acl_policy: canned ACL of the object, e.g. ``"bucket-owner-full-control"``.
    :param followanalytics_conn_id: the FollowAnalytics connection (templated).
    :param content_type: Content-Type of the object. Default: from the export
        (``text/csv; charset=utf-8`` or ``application/vnd.ms-excel``), or the key's suffix.
    :param part_size: bytes per multipart part, >= 5 MiB (default 8 MiB). It doubles every
        2,500 parts so that very large exports fit in S3's 10,000 parts.
    :param upload_concurrency: parts uploaded at the same time (default 4: keeps the store busy
        while the next part downloads).
    :param download_attempts: how many times to download the export before giving up
        (default: the FollowAnalytics connection's ``max_retries`` + 1).
    :return: the object's URL, ``s3://bucket/key``. When bucket and key hold no Jinja, it is
        also declared as this task's outlet (an Asset / Dataset) so other DAGs can be
        scheduled on it. A templated destination is only known at run time: pass
        ``outlets=[Asset("s3://lake/followanalytics/devices/")]`` (``Dataset`` on Airflow 2)
        yourself if other DAGs should wait for it.
    """

    template_fields: Sequence[str] = (
        "callback_url",
        "s3_bucket",
        "s3_key",
        "aws_conn_id",
        "followanalytics_conn_id",
    )
    ui_color = "#ffe9c9"

    def __init__(
        self,
        *,
        callback_url: str,
        s3_key: str,
        s3_bucket: str | None = None,
        aws_conn_id: str | None = "aws_default",
        replace: bool = False,
        gzip: bool = False,
        gzip_level: int = 6,
        encrypt: bool = False,
        acl_policy: str | None = None,
        followanalytics_conn_id: str = FollowAnalyticsHook.default_conn_name,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        upload_concurrency: int = 4,
        download_attempts: int | None = None,
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
        if "outlets" not in kwargs:
            uri = _static_uri(s3_bucket, s3_key)
            if uri is not None:
                kwargs["outlets"] = [lineage_uri_object(uri)]
        super().__init__(**kwargs)
        self.callback_url = callback_url
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.aws_conn_id = aws_conn_id
        self.replace = replace
        self.gzip = gzip
        self.gzip_level = check_gzip_level(gzip_level)
        self.encrypt = encrypt
        self.acl_policy = acl_policy
        self.followanalytics_conn_id = followanalytics_conn_id
        self.content_type = content_type
        self.part_size = part_size
        self.upload_concurrency = upload_concurrency
        self.download_attempts = check_download_attempts(download_attempts)

    def execute(self, context: Context) -> str:
        """Download the export and upload it to S3 at the same time; return ``s3://bucket/key``."""
        bucket, key = parse_s3_destination(self.s3_bucket, self.s3_key)
        uri = f"s3://{bucket}/{key}"
        s3_hook_class = _s3_hook_class()
        hook = FollowAnalyticsHook(self.followanalytics_conn_id)
        callback_url = hook.check_callback_url(self.callback_url)
        s3_hook = s3_hook_class(aws_conn_id=self.aws_conn_id)
        if not self.replace and s3_hook.check_for_key(key, bucket_name=bucket):
            raise FollowAnalyticsError(
                f"{uri} already exists and replace=False; nothing was downloaded. Set replace=True to "
                "overwrite it, or template the key (e.g. with {{ ds }}) to write one object per run."
            )
        client = s3_hook.get_conn()
        abort_unfinished_uploads(client, bucket, key, self.log)  # a killed attempt could not abort its own
        attempts = self.download_attempts or hook.settings.max_retries + 1
        if self.gzip and not key.endswith(".gz"):
            self.log.warning("gzip=True but %s does not end with '.gz'; most readers detect gzip by that suffix.", uri)
        self.log.info(
            "Streaming FollowAnalytics export %s to %s (parts of %s, %d at a time%s)",
            redact_url(callback_url),
            uri,
            describe_size(self.part_size),
            self.upload_concurrency,
            f", gzip level {self.gzip_level}" if self.gzip else "",
        )
        started = time.monotonic()
        result = transfer_with_restarts(
            hook, callback_url, attempts, lambda export: self._transfer_once(client, export, bucket, key), self.log
        )
        self._check_object_size(client, bucket, key, result.uploaded)
        self.log.info(
            "Uploaded %s to %s: %s downloaded, %s",
            f"{result.uploaded} bytes",
            uri,
            f"{result.downloaded} bytes",
            f"{result.parts} parts" if result.parts else "single PutObject",
        )
        self.log.info("Transfer rate: %s", describe_rate(result.downloaded, time.monotonic() - started))
        return uri

    def _object_args(self, content_type: str) -> dict[str, Any]:
        args: dict[str, Any] = {"ContentType": content_type}
        if self.encrypt:
            args["ServerSideEncryption"] = "AES256"
        if self.acl_policy:
            args["ACL"] = self.acl_policy
        return args

    def _transfer_once(self, client: Any, export: ExportStream, bucket: str, key: str) -> TransferResult:
        """One attempt: stream ``export`` into the object; on any error leave nothing behind."""
        object_args = self._object_args(self.content_type or content_type_for(export.content_type, key, self.gzip))
        chunks = export.chunks()
        if self.gzip:
            chunks = gzip_chunks(chunks, self.gzip_level)
        upload = MultipartUpload(client, bucket, key, object_args, self.upload_concurrency, self.log)
        number = 0
        try:
            # No enumerate(): its cached result tuple would keep the previous part alive while the
            # next one fills.
            for block in iter_blocks(chunks, _part_sizes(self.part_size)):
                number += 1
                if number == 1 and len(block) < self.part_size:  # the whole export fits in one request
                    client.put_object(Bucket=bucket, Key=key, Body=block, **object_args)
                    return TransferResult(uploaded=len(block), downloaded=export.bytes_read, parts=0)
                if number > S3_MAX_PARTS:
                    raise FollowAnalyticsError(
                        f"The export needs more than {S3_MAX_PARTS} S3 parts with part_size={self.part_size}; "
                        "set a larger part_size."
                    )
                upload.add_part(number, block)
                del block  # the part thread holds the only reference: freed once uploaded
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        finally:
            upload.close()
        return TransferResult(uploaded=upload.bytes_uploaded, downloaded=export.bytes_read, parts=upload.part_count)

    def _check_object_size(self, client: Any, bucket: str, key: str, expected: int) -> None:
        """Compare the stored object's size with the bytes sent; delete it and fail if they differ."""
        stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if stored != expected:
            client.delete_object(Bucket=bucket, Key=key)
            raise FollowAnalyticsError(
                f"s3://{bucket}/{key} holds {stored} bytes after the upload but {expected} were sent; "
                "the object was deleted."
            )


__all__ = ["FollowAnalyticsToS3Operator", "parse_s3_destination"]
