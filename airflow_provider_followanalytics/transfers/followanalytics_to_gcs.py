"""FollowAnalyticsToGCSOperator: stream a ready export into Google Cloud Storage, in bounded memory.

``google-cloud-storage`` and the Google provider are imported when the task runs, not when
the DAG file is parsed; the provider is an optional extra
(``airflow-provider-followanalytics[google]``).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._compat import BaseOperator, lineage_uri_object
from airflow_provider_followanalytics._rendering import MasksCallbackUrl
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.transfers._streaming import (
    BlockPipe,
    MiB,
    UploaderStopped,
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
    from collections.abc import Sequence

    from airflow.sdk import Context  # type hints only (Airflow 2 has the same mapping type)

    from airflow_provider_followanalytics.hooks.followanalytics import ExportStream

#: Resumable upload chunks must be multiples of 256 KiB.
GCS_CHUNK_MULTIPLE = 256 * 1024
DEFAULT_CHUNK_SIZE = 8 * MiB
MAX_CHUNK_SIZE = 1024 * MiB


def check_gcs_destination(bucket_name: object, object_name: object) -> tuple[str, str]:
    """Return ``(bucket_name, object_name)`` once checked; raise a clear error otherwise."""
    if not isinstance(bucket_name, str) or not bucket_name.strip() or "/" in bucket_name.strip():
        raise FollowAnalyticsConfigError(
            f"bucket_name={bucket_name!r} is invalid; expected a bucket name such as 'my-lake' "
            "(no gs:// prefix, no path: the path goes in object_name)."
        )
    if not isinstance(object_name, str) or not object_name.strip():
        raise FollowAnalyticsConfigError(
            f"object_name={object_name!r} is invalid; expected an object name such as 'exports/devices.csv'."
        )
    return bucket_name.strip(), object_name.strip()


def _static_uri(bucket_name: object, object_name: object) -> str | None:
    """The destination URI when it is known at DAG parse time (no Jinja, valid), else None."""
    for value in (bucket_name, object_name):
        if not isinstance(value, str) or "{{" in value or "{%" in value:
            return None
    try:
        bucket, name = check_gcs_destination(bucket_name, object_name)
    except FollowAnalyticsConfigError:
        return None
    return f"gs://{bucket}/{name}"


def _gcs_hook_class() -> Any:
    try:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
    except ImportError as exc:
        raise FollowAnalyticsError(
            "FollowAnalyticsToGCSOperator needs the Google provider (apache-airflow-providers-google): "
            "pip install 'airflow-provider-followanalytics[google]'"
        ) from exc
    return GCSHook


@dataclass
class TransferResult:
    """What one successful attempt moved: bytes uploaded (after gzip) and bytes downloaded."""

    uploaded: int
    downloaded: int


class FollowAnalyticsToGCSOperator(MasksCallbackUrl, BaseOperator):
    """Stream a ready FollowAnalytics export into a GCS object, in bounded memory.

    The export is downloaded from its callback URL and sent to GCS at the same time, as a
    resumable upload in ``chunk_size`` chunks: one chunk goes up while the next one
    downloads, so memory stays at about ``3 x chunk_size`` (24 MiB by default) whatever the
    file size, and the transfer runs at the speed of the slower side.

    Nothing half-written is ever visible: GCS creates the object only when the final chunk
    arrives, and the final chunk is sent only once the whole export was downloaded and
    checked against its ``Content-Length``. A download that breaks off (truncated body,
    reset connection, read timeout) drops the unfinished resumable session (GCS discards it
    after a week; it holds no object and is not listed) and starts again from zero, up to
    ``download_attempts`` times. An existing object is replaced only when a transfer
    succeeds; a failed one leaves it untouched.

    The export must be ready: put an ``ExportReadySensor`` before this task. A callback
    URL that answers 202 (not ready) or 400 (expired link) fails the task at once.

    .. code-block:: python

        upload = FollowAnalyticsToGCSOperator(
            task_id="events_to_gcs",
            callback_url=ready.output,  # ExportReadySensor, or the export operator
            bucket_name="lake",
            object_name="followanalytics/events/{{ ds }}.csv",
        )

    :param callback_url: the export's callback URL, as returned by an export operator or
        ``ExportReadySensor`` (templated; usually ``ready.output``).
    :param bucket_name: destination bucket (templated).
    :param object_name: destination object name (templated).
    :param gcp_conn_id: the Airflow Google Cloud connection (templated).
    :param gzip: compress on the fly; the object is then one gzip member that decompresses to
        the exact export, stored with Content-Type ``application/gzip`` and no
        Content-Encoding (so GCS never transcodes it; name it ``.gz``).
    :param gzip_level: zlib compression level, 0-9 (default 6).
    :param mime_type: Content-Type of the object. Default: from the export
        (``text/csv; charset=utf-8`` or ``application/vnd.ms-excel``), or the name's suffix.
    :param followanalytics_conn_id: the FollowAnalytics connection (templated).
    :param impersonation_chain: service account(s) to impersonate, as for every Google
        operator (templated).
    :param chunk_size: bytes per resumable-upload request, a multiple of 256 KiB
        (default 8 MiB).
    :param download_attempts: how many times to download the export before giving up
        (default: the FollowAnalytics connection's ``max_retries`` + 1).
    :return: the object's URL, ``gs://bucket/object``. When bucket and name hold no Jinja,
        it is also declared as this task's outlet (an Asset / Dataset) so other DAGs can be
        scheduled on it. A templated destination is only known at run time: pass
        ``outlets=[Asset("gs://lake/followanalytics/events/")]`` (``Dataset`` on Airflow 2)
        yourself if other DAGs should wait for it.
    """

    template_fields: Sequence[str] = (
        "callback_url",
        "bucket_name",
        "object_name",
        "gcp_conn_id",
        "followanalytics_conn_id",
        "impersonation_chain",
    )
    ui_color = "#d6e4f5"

    def __init__(
        self,
        *,
        callback_url: str,
        bucket_name: str,
        object_name: str,
        gcp_conn_id: str = "google_cloud_default",
        gzip: bool = False,
        gzip_level: int = 6,
        mime_type: str | None = None,
        followanalytics_conn_id: str = FollowAnalyticsHook.default_conn_name,
        impersonation_chain: str | Sequence[str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        download_attempts: int | None = None,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or not GCS_CHUNK_MULTIPLE <= chunk_size <= MAX_CHUNK_SIZE
            or chunk_size % GCS_CHUNK_MULTIPLE
        ):
            raise FollowAnalyticsConfigError(
                f"chunk_size={chunk_size!r} is invalid; GCS resumable uploads need a multiple of 256 KiB "
                f"({GCS_CHUNK_MULTIPLE} bytes), up to {MAX_CHUNK_SIZE} bytes, e.g. 8 * 1024 * 1024."
            )
        if "outlets" not in kwargs:
            uri = _static_uri(bucket_name, object_name)
            if uri is not None:
                kwargs["outlets"] = [lineage_uri_object(uri)]
        super().__init__(**kwargs)
        self.callback_url = callback_url
        self.bucket_name = bucket_name
        self.object_name = object_name
        self.gcp_conn_id = gcp_conn_id
        self.gzip = gzip
        self.gzip_level = check_gzip_level(gzip_level)
        self.mime_type = mime_type
        self.followanalytics_conn_id = followanalytics_conn_id
        self.impersonation_chain = impersonation_chain
        self.chunk_size = chunk_size
        self.download_attempts = check_download_attempts(download_attempts)

    def execute(self, context: Context) -> str:
        """Download the export and upload it to GCS at the same time; return ``gs://bucket/object``."""
        bucket_name, object_name = check_gcs_destination(self.bucket_name, self.object_name)
        uri = f"gs://{bucket_name}/{object_name}"
        gcs_hook_class = _gcs_hook_class()
        hook = FollowAnalyticsHook(self.followanalytics_conn_id)
        callback_url = hook.check_callback_url(self.callback_url)
        client = gcs_hook_class(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain).get_conn()
        attempts = self.download_attempts or hook.settings.max_retries + 1
        if self.gzip and not object_name.endswith(".gz"):
            self.log.warning("gzip=True but %s does not end with '.gz'; most readers detect gzip by that suffix.", uri)
        self.log.info(
            "Streaming FollowAnalytics export %s to %s (resumable upload, chunks of %s%s)",
            redact_url(callback_url),
            uri,
            describe_size(self.chunk_size),
            f", gzip level {self.gzip_level}" if self.gzip else "",
        )
        started = time.monotonic()
        result = transfer_with_restarts(
            hook,
            callback_url,
            attempts,
            lambda export: self._transfer_once(client, export, bucket_name, object_name),
            self.log,
        )
        self.log.info(
            "Uploaded %d bytes to %s (%d bytes downloaded); transfer rate: %s",
            result.uploaded,
            uri,
            result.downloaded,
            describe_rate(result.downloaded, time.monotonic() - started),
        )
        return uri

    def _transfer_once(self, client: Any, export: ExportStream, bucket_name: str, object_name: str) -> TransferResult:
        """One attempt: this thread downloads into a pipe, an upload thread feeds the resumable upload.

        On a download error the pipe makes the upload thread's next read raise, so the
        library never sends the final chunk and the object is never created.
        """
        content_type = self.mime_type or content_type_for(export.content_type, object_name, self.gzip)
        blob = client.bucket(bucket_name).blob(object_name, chunk_size=self.chunk_size)
        chunks = export.chunks()
        if self.gzip:
            chunks = gzip_chunks(chunks, self.gzip_level)
        pipe = BlockPipe()
        sent = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="followanalytics-gcs-upload") as executor:
            upload = executor.submit(_upload_from_pipe, blob, pipe, content_type)
            try:
                for block in iter_blocks(chunks, itertools.repeat(self.chunk_size)):
                    sent += len(block)
                    pipe.put(block)
                    del block  # only the pipe / the upload holds it now
                pipe.finish()
            except UploaderStopped:
                pass  # the upload failed first: upload.result() below raises its error
            except BaseException as exc:
                pipe.fail(f"{type(exc).__name__}: {exc}")
                self.log.info("Discarded the unfinished resumable upload of gs://%s/%s.", bucket_name, object_name)
                raise  # leaving the with-block waits for the upload thread to stop
            upload.result()
        if blob.size is not None and blob.size != sent:
            blob.delete()
            raise FollowAnalyticsError(
                f"gs://{bucket_name}/{object_name} holds {blob.size} bytes after the upload but {sent} were "
                "sent; the object was deleted."
            )
        return TransferResult(uploaded=sent, downloaded=export.bytes_read)


def _upload_from_pipe(blob: Any, pipe: BlockPipe, content_type: str) -> None:
    """Run the resumable upload of ``blob`` from ``pipe`` (unknown size: the end of the pipe ends it)."""
    try:
        blob.upload_from_file(pipe, rewind=False, size=None, content_type=content_type)
    finally:
        pipe.close_reader()


__all__ = ["FollowAnalyticsToGCSOperator", "check_gcs_destination"]
