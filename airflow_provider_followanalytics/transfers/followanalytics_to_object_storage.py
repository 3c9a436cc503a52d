"""FollowAnalyticsToObjectStorageOperator: stream a ready export to any ``ObjectStoragePath`` (fsspec, at run time)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._checks import check_int, require_provider
from airflow_provider_followanalytics.hooks._destination import (
    PACKAGES_BY_PROTOCOL,
    ObjectStorageDestination,
    static_destination,
)
from airflow_provider_followanalytics.hooks._export_reader import MiB
from airflow_provider_followanalytics.links import DESTINATION_LINKS, links_for
from airflow_provider_followanalytics.transfers._base import FollowAnalyticsTransferOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader


class FollowAnalyticsToObjectStorageOperator(FollowAnalyticsTransferOperator):
    """Stream a ready FollowAnalytics export to an ``ObjectStoragePath``, never leaving a partial object.

    A local file (``file:///data/x.csv``; missing folders are created), Azure (``abfs://azure_conn@container/path``;
    ``wasb://`` is read as ``abfs://``), S3 (s3fs), GCS (gcsfs) or any store Airflow's object storage knows,
    in blocks of ``block_size`` bytes. Object stores stage the upload and publish it at the end; other stores
    get a hidden ``.<name>.<random>.partial`` file beside the destination, renamed onto it (README).

    :param destination: an ``ObjectStoragePath``, or its URL (templated).
    :param conn_id: the Airflow connection of the store, when the URL names none (templated).
    :param replace: overwrite an existing object; with False (the default) the task fails before
        downloading anything when the destination exists.
    :param block_size: bytes the store's file sends at a time: the upload's part or block size
        (default 8 MiB; S3 needs >= 5 MiB). Local files are written as the download arrives.
    :param content_type: the object's Content-Type on stores that keep one (S3, GCS, Azure); default:
        the export's (``text/csv; charset=utf-8`` or ``application/vnd.ms-excel``; ``application/gzip``
        with ``gzip``).
    :return: the destination URL without the connection id (``abfs://container/path``,
        ``file:///data/x.csv``).

    The other arguments are those of every transfer (``FollowAnalyticsTransferOperator``).
    """

    template_fields: Sequence[str] = (*FollowAnalyticsTransferOperator.template_fields, "destination", "conn_id")
    ui_color = "#e8f7e4"
    #: Narrowed per task to the destination's store (none for a local file), see ``links.links_for``.
    operator_extra_links = DESTINATION_LINKS

    def __init__(
        self,
        *,
        destination: Any,
        conn_id: str | None = None,
        replace: bool = False,
        block_size: int = 8 * MiB,
        content_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_int("block_size", block_size, 256 * 1024, 1 << 40, "at least 256 KiB")
        static = static_destination(destination)
        for module, requirement in PACKAGES_BY_PROTOCOL.get(static[0] if static else "", ()):
            require_provider(type(self).__name__, module, requirement)
        super().__init__(outlet_uri=static[1] if static else None, **kwargs)
        self.destination, self.conn_id, self.replace, self.block_size = destination, conn_id, replace, block_size
        self.content_type = content_type
        self.operator_extra_links = links_for(destination)

    def prepare(self) -> str:
        """Resolve the path; check its store and ``replace`` before anything is downloaded."""
        self._destination = ObjectStorageDestination(
            self.destination,
            self.conn_id,
            replace=self.replace,
            block_size=self.block_size,
            content_type=self.content_type,
            gzip=self.gzip,
            log=self.log,
        )
        uri = self._destination.check()
        self.written_to = self._destination.path  # lineage reads the Azure account from the path
        return uri

    def upload(self, reader: ExportReader) -> str:
        """Write every block, then publish; discard the staged upload or temporary file on any error."""
        return self._destination.write(reader)


__all__ = ["FollowAnalyticsToObjectStorageOperator"]
