"""FollowAnalyticsToGCSOperator: stream a ready export into GCS with a resumable upload (imported at run time)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._checks import check_int
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.hooks._destination import PACKAGE, content_type_for
from airflow_provider_followanalytics.hooks._export_reader import MiB
from airflow_provider_followanalytics.links import GCSObjectLink
from airflow_provider_followanalytics.transfers._base import FollowAnalyticsTransferOperator, static_uri

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader


def check_gcs_destination(bucket_name: object, object_name: object) -> tuple[str, str]:
    """Return ``(bucket_name, object_name)`` once checked; raise a clear error otherwise.

    :param bucket_name: a bucket name (no ``gs://``, no ``/``).
    :param object_name: the object's name (its path in the bucket), not empty.
    :raises ~airflow_provider_followanalytics.exceptions.FollowAnalyticsConfigError: either is not a
        non-empty string of that shape.
    """
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
    """Stream a ready FollowAnalytics export into a GCS object with one resumable upload.

    Memory stays at about ``2 x chunk_size``. GCS creates the object on the final chunk only: a
    failed transfer leaves an unfinished session (no object; GCS drops it after a week).

    :param bucket_name: destination bucket (templated).
    :param object_name: destination object name (templated).
    :param gcp_conn_id: the Airflow Google Cloud connection (templated).
    :param mime_type: Content-Type of the object (default: see ``FollowAnalyticsTransferOperator``).
    :param impersonation_chain: service account(s) to impersonate, as for every Google operator (templated).
    :param chunk_size: bytes per resumable-upload request, a multiple of 256 KiB (default 8 MiB).
    :return: ``gs://bucket/object``.

    The other arguments are those of every transfer (``FollowAnalyticsTransferOperator``).
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
    operator_extra_links = (GCSObjectLink(),)

    def __init__(
        self,
        *,
        bucket_name: str,
        object_name: str,
        gcp_conn_id: str = "google_cloud_default",
        mime_type: str | None = None,
        impersonation_chain: str | Sequence[str] | None = None,
        chunk_size: int = 8 * MiB,
        **kwargs: Any,
    ) -> None:
        expected = "a multiple of 256 KiB (262144 bytes) up to 1 GiB for GCS resumable uploads, e.g. 8 * 1024 * 1024"
        check_int("chunk_size", chunk_size, 256 * 1024, 1024 * MiB, expected, multiple=256 * 1024)
        super().__init__(outlet_uri=static_uri("gs", check_gcs_destination, bucket_name, object_name), **kwargs)
        self.bucket_name, self.object_name, self.gcp_conn_id = bucket_name, object_name, gcp_conn_id
        self.mime_type, self.impersonation_chain, self.chunk_size = mime_type, impersonation_chain, chunk_size

    @cached_property
    def gcs_hook(self) -> Any:
        """The Google provider's ``GCSHook`` of ``gcp_conn_id``."""
        return self.store_hook_class(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)

    def prepare(self) -> str:
        """Check the names, and that the bucket exists, before anything is downloaded."""
        bucket_name, self._name = check_gcs_destination(self.bucket_name, self.object_name)
        self._bucket = self.gcs_hook.get_conn().bucket(bucket_name)
        self._bucket.reload()  # NotFound (naming the bucket) before the download, not after the first chunk
        if "storage.objects.create" not in self._bucket.test_iam_permissions(["storage.objects.create"]):
            raise FollowAnalyticsError(
                f"Cannot write to GCS bucket {bucket_name!r} (object {self._name!r}) with connection "
                f"{self.gcp_conn_id!r}: its identity lacks storage.objects.create. Nothing was downloaded. "
                "Grant it roles/storage.objectCreator (or objectAdmin) on the bucket."
            )
        return f"gs://{bucket_name}/{self._name}"

    def upload(self, reader: ExportReader) -> str:
        """Resumable upload from the reader; a read that raises never sends the final chunk."""
        blob = self._bucket.blob(self._name, chunk_size=self.chunk_size)
        content_type = self.mime_type or content_type_for(reader.content_type, self._name, self.gzip)
        blob.upload_from_file(reader, rewind=False, size=None, content_type=content_type)
        self.check_stored_size(f"gs://{self._bucket.name}/{self._name}", blob.size, reader.bytes_out, blob.delete)
        return f"resumable upload in chunks of {self.chunk_size // 1024} KiB"


__all__ = ["FollowAnalyticsToGCSOperator", "check_gcs_destination"]
