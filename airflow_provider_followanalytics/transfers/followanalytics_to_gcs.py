"""FollowAnalyticsToGCSOperator: stream a ready export into Google Cloud Storage, in bounded memory.

The upload is google-cloud-storage's resumable upload from the export reader
(``Blob.upload_from_file``), through ``GCSHook``'s client. The client and the Google provider
are imported when the task runs, not when the DAG file is parsed; the provider is an
optional extra (``airflow-provider-followanalytics[google]``).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.transfers._base import (
    PACKAGE,
    FollowAnalyticsTransferOperator,
    static_value,
)
from airflow_provider_followanalytics.transfers._streaming import MiB, content_type_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.transfers._streaming import ExportReader

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


class FollowAnalyticsToGCSOperator(FollowAnalyticsTransferOperator):
    """Stream a ready FollowAnalytics export into a GCS object, in bounded memory.

    The export is read from its callback URL by a resumable upload in ``chunk_size`` chunks:
    memory stays at about ``2 x chunk_size`` (16 MiB by default) whatever the file size.

    Nothing half-written is ever visible: GCS creates the object only when the final chunk
    arrives, and the final chunk is sent only once the whole export was downloaded and
    checked against its ``Content-Length``. A download that breaks off (truncated body,
    reset connection, read timeout) leaves the unfinished resumable session unused (GCS
    discards it after a week; it holds no object and is not listed) and starts again from
    zero, up to ``download_attempts`` times. An existing object is replaced only when a
    transfer succeeds; a failed one leaves it untouched.

    A callback URL that answers 202 (not ready) fails the task, or defers it with
    ``deferrable=True``; 400 (expired link) fails it at once, without retries.

    .. code-block:: python

        upload = FollowAnalyticsToGCSOperator(
            task_id="events_to_gcs",
            callback_url=ready.output,  # ExportReadySensor, or the export operator with deferrable=True
            bucket_name="lake",
            object_name="followanalytics/events/{{ ds }}.csv",
        )

    :param bucket_name: destination bucket (templated).
    :param object_name: destination object name (templated).
    :param gcp_conn_id: the Airflow Google Cloud connection (templated).
    :param mime_type: Content-Type of the object. Default: from the export
        (``text/csv; charset=utf-8`` or ``application/vnd.ms-excel``), or the name's suffix;
        ``application/gzip`` and no Content-Encoding with ``gzip=True`` (GCS never transcodes it).
    :param impersonation_chain: service account(s) to impersonate, as for every Google
        operator (templated).
    :param chunk_size: bytes per resumable-upload request, a multiple of 256 KiB
        (default 8 MiB).
    :return: the object's URL, ``gs://bucket/object``. When bucket and name hold no Jinja,
        it is also declared as this task's outlet (an Asset / Dataset). A templated
        destination is only known at run time: pass
        ``outlets=[Asset("gs://lake/followanalytics/events/")]`` (``Dataset`` on Airflow 2)
        yourself if other DAGs should wait for it.

    The other arguments (``callback_url``, ``followanalytics_conn_id``, ``gzip``,
    ``gzip_level``, ``download_attempts``, ``deferrable``, ``poll_interval``,
    ``wait_timeout``) are those of every transfer (see ``FollowAnalyticsTransferOperator``).
    """

    template_fields: Sequence[str] = (
        *FollowAnalyticsTransferOperator.template_fields,
        "bucket_name",
        "object_name",
        "gcp_conn_id",
        "impersonation_chain",
    )
    required_packages = (("airflow.providers.google", f"{PACKAGE}[google]"),)
    store_hook_path = ("airflow.providers.google.cloud.hooks.gcs", "GCSHook", "google")
    ui_color = "#d6e4f5"

    def __init__(
        self,
        *,
        bucket_name: str,
        object_name: str,
        gcp_conn_id: str = "google_cloud_default",
        mime_type: str | None = None,
        impersonation_chain: str | Sequence[str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
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
        super().__init__(outlet_uri=_static_uri(bucket_name, object_name), **kwargs)
        self.bucket_name = bucket_name
        self.object_name = object_name
        self.gcp_conn_id = gcp_conn_id
        self.mime_type = mime_type
        self.impersonation_chain = impersonation_chain
        self.chunk_size = chunk_size

    @cached_property
    def gcs_hook(self) -> Any:
        """The Google provider's ``GCSHook`` of ``gcp_conn_id``."""
        return self.store_hook_class(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)

    def prepare(self) -> str:
        """Check the names, and that the bucket exists, before anything is downloaded."""
        bucket_name, self._name = check_gcs_destination(self.bucket_name, self.object_name)
        self._bucket = self.gcs_hook.get_conn().bucket(bucket_name)
        self._bucket.reload()  # NotFound (naming the bucket) before the download, not after the first chunk
        return f"gs://{bucket_name}/{self._name}"

    def upload(self, reader: ExportReader) -> str:
        """Resumable upload from the reader; a read that raises never sends the final chunk."""
        blob = self._bucket.blob(self._name, chunk_size=self.chunk_size)
        content_type = self.mime_type or content_type_for(reader.content_type, self._name, self.gzip)
        blob.upload_from_file(reader, rewind=False, size=None, content_type=content_type)
        if blob.size is not None and blob.size != reader.bytes_out:
            blob.delete()
            raise FollowAnalyticsError(
                f"gs://{self._bucket.name}/{self._name} holds {blob.size} bytes after the upload but "
                f"{reader.bytes_out} were sent; the object was deleted."
            )
        return f"resumable upload in chunks of {self.chunk_size // 1024} KiB"


def _static_uri(bucket_name: object, object_name: object) -> str | None:
    """The destination URI when it is known at DAG parse time (no Jinja, valid), else None."""
    if static_value(bucket_name) is None or static_value(object_name) is None:
        return None
    try:
        bucket, name = check_gcs_destination(bucket_name, object_name)
    except FollowAnalyticsConfigError:
        return None
    return f"gs://{bucket}/{name}"


__all__ = ["FollowAnalyticsToGCSOperator", "check_gcs_destination"]
