"""FollowAnalyticsToObjectStorageOperator: stream a ready export to any ``ObjectStoragePath``, in bounded memory.

Local files, Azure Blob / ADLS (``abfs://``, through the microsoft-azure provider and adlfs),
S3 (s3fs), GCS (gcsfs), and any other fsspec store Airflow knows. ``fsspec`` and the store's
library are imported when the task runs, not when the DAG file is parsed.

fsspec files commit what they hold on ``close()``, which ``__exit__`` and ``__del__`` call after
an exception too. So nothing is written through a plain ``open("wb")`` here:

* stores whose files stage an upload (s3fs, gcsfs, adlfs) send parts / chunks / blocks while
  the export streams, and make the object appear at the end only: s3fs and gcsfs files are
  opened with ``autocommit=False`` and committed with ``commit()``; a failure aborts the S3
  multipart upload (GCS drops an unfinished resumable session by itself). adlfs ignores
  ``autocommit`` and commits its block list on ``close()``: a failed Azure file is never
  closed (it is marked closed, so ``__del__`` commits nothing), and its staged blocks stay
  uncommitted, invisible, until Azure drops them after a week;
* every other store (local files first) is written under a hidden temporary name beside the
  destination, then renamed onto it (atomic on a local disk); a failure removes it.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_followanalytics._compat import object_storage_path
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.transfers._base import (
    PACKAGE,
    FollowAnalyticsTransferOperator,
    require_provider,
    static_value,
)
from airflow_provider_followanalytics.transfers._streaming import MiB

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_followanalytics.transfers._streaming import ExportReader

DEFAULT_BLOCK_SIZE = 8 * MiB
#: Protocols whose fsspec files stage the upload until ``commit()`` (``autocommit=False``).
STAGING_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
#: adlfs files commit their block list on ``close()``, whatever ``autocommit`` says.
COMMIT_ON_CLOSE_PROTOCOLS = frozenset({"abfs", "abfss", "az", "adl"})
#: ``wasb://conn@container/path`` is read as ``abfs://`` (the same adlfs filesystem).
ALIASES = {"wasb": "abfs", "wasbs": "abfss"}
LOCAL_PROTOCOLS = frozenset({"file", "local"})
_AMAZON = ("airflow.providers.amazon", f"{PACKAGE}[amazon]")
_GOOGLE = ("airflow.providers.google", f"{PACKAGE}[google]")
_AZURE = ("airflow.providers.microsoft.azure", f"{PACKAGE}[azure]")
#: What a protocol needs installed: (module, what to pip install), checked when the DAG is parsed.
PACKAGES_BY_PROTOCOL: dict[str, tuple[tuple[str, str], ...]] = {
    **dict.fromkeys(("s3", "s3a"), (_AMAZON, ("s3fs", "apache-airflow-providers-amazon[s3fs]"))),
    **dict.fromkeys(("gs", "gcs"), (_GOOGLE, ("gcsfs", f"{PACKAGE}[google]"))),
    **dict.fromkeys(("abfs", "abfss", "az", "adl"), (_AZURE, ("adlfs", f"{PACKAGE}[azure]"))),
}


def bucket_and_key(path: Any) -> tuple[str, str]:
    """Bucket (container) and key of an ``ObjectStoragePath`` (its ``bucket`` holds the conn id on 2.10)."""
    bucket, _, key = str(path.path).partition("/")
    return bucket, key


def destination_uri(path: Any) -> str:
    """``protocol://bucket/key`` of an ``ObjectStoragePath`` (``file:///abs/path`` locally), without the conn id."""
    if path.protocol in LOCAL_PROTOCOLS:
        return f"file://{path.path}"
    bucket, key = bucket_and_key(path)
    return f"{path.protocol}://{bucket}/{key}"


def _static_destination(destination: object) -> tuple[str, str] | None:
    """(protocol, URI) of a destination known at parse time, else None (templated or unusable)."""
    if not isinstance(destination, str):  # an ObjectStoragePath the DAG author built
        try:
            return str(destination.protocol), destination_uri(destination)  # type: ignore[attr-defined]
        except AttributeError:
            return None
    url = static_value(destination)
    if url is None or "://" not in url:
        return None
    parts = urlsplit(_unalias(url))
    host = parts.netloc.rpartition("@")[2]  # drop the connection id
    return parts.scheme.lower(), f"{parts.scheme.lower()}://{host}{parts.path}"


def _bucket_exists(path: Any) -> bool:
    # fsspec filesystems are shared and cache listings (s3fs lists buckets once): ask afresh.
    path.fs.invalidate_cache()
    return bool(path.fs.exists(bucket_and_key(path)[0]))


def _unalias(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return ALIASES.get(scheme.lower(), scheme) + sep + rest


class _StagedFile:
    """A store's own file opened with ``autocommit=False``: nothing is visible before :meth:`commit`."""

    def __init__(self, path: Any, block_size: int, log: Any) -> None:
        self._fs, self._log = path.fs, log
        self._file = path.fs.open(path.path, "wb", block_size=block_size, autocommit=False)
        # An unfinished GCS resumable session holds no object and expires after a week; gcsfs's
        # discard() (a DELETE of the session) fails on GCS's 499 answer, and the emulator retries it.
        self._cancel = path.protocol not in ("gs", "gcs")
        self._commits_on_close = path.protocol in COMMIT_ON_CLOSE_PROTOCOLS

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.close()  # sends what is buffered, completes nothing (autocommit=False)
            self._file.commit()
        finally:
            self._forget()

    def discard(self) -> None:
        try:
            if self._commits_on_close:
                self._disarm()
                return
            with contextlib.suppress(Exception):  # the upload may be what failed: discard anyway
                self._file.close()
            if self._cancel:
                self._file.discard()  # abort the multipart upload / leave the staged blocks uncommitted
        except Exception as exc:  # the error that stopped the transfer matters more than this one
            self._log.warning("Could not discard the unfinished upload (%s: %s)", type(exc).__name__, exc)
        finally:
            self._forget()

    def _disarm(self) -> None:
        """Drop an adlfs file without committing it: buffer gone, marked closed, its client closed."""
        from adlfs.utils import close_container_client
        from fsspec.asyn import sync

        self._file.buffer = None
        self._file.closed = True  # fsspec's close() and __del__ now do nothing
        sync(self._file.loop, close_container_client, self._file)

    def _forget(self) -> None:
        # fsspec lists every autocommit=False file in the (cached) filesystem's transaction; a
        # later ``with fs.transaction`` would otherwise commit or discard it again.
        with contextlib.suppress(ValueError, AttributeError):
            self._fs.transaction.files.remove(self._file)


class _RenamedFile:
    """A hidden temporary file beside the destination, renamed onto it by :meth:`commit`."""

    def __init__(self, path: Any, block_size: int, log: Any) -> None:
        self._fs = path.fs
        self._final = path.path
        parent, _, name = self._final.rpartition("/")
        self._temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial"
        self._file = self._fs.open(self._temporary, "wb", block_size=block_size)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.close()
            self._fs.mv(self._temporary, self._final)  # os.rename on a local disk: atomic
        except BaseException:
            self._remove()
            raise

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._temporary)


class FollowAnalyticsToObjectStorageOperator(FollowAnalyticsTransferOperator):
    """Stream a ready FollowAnalytics export to an ``ObjectStoragePath``, never leaving a partial object.

    The destination is Airflow's object storage path: a local file (``file:///data/x.csv``),
    Azure Blob Storage / ADLS Gen2 (``abfs://azure_conn@container/path/x.csv``, the
    microsoft-azure provider), S3 (``s3://aws_conn@bucket/key``, s3fs), GCS
    (``gs://gcp_conn@bucket/name``, gcsfs), or any other store Airflow's object storage knows.
    The export is written while it downloads, ``block_size`` bytes at a time, so memory stays
    at about two blocks whatever the file size.

    Nothing half-written is ever visible. Object stores stage the upload (multipart upload,
    resumable session, uncommitted blocks) and make the object appear only once the whole
    export was downloaded and checked against its ``Content-Length``; a failure discards the
    staged upload. Local files (and other stores) are written under a hidden temporary name
    beside the destination (``.<name>.<random>.partial``) and renamed onto it at the end; a
    failure removes the temporary file. Missing parent folders of a local file are created.
    A download that breaks off starts again from zero, up to ``download_attempts`` times.

    .. code-block:: python

        upload = FollowAnalyticsToObjectStorageOperator(
            task_id="devices_to_azure",
            callback_url=start.output,
            destination="abfs://azure_lake@exports/followanalytics/devices/{{ ds }}.csv.gz",
            gzip=True,
            deferrable=True,
        )

    :param destination: an ``ObjectStoragePath``, or its URL (templated).
    :param conn_id: the Airflow connection of the store, when the URL names none (templated).
    :param replace: overwrite an existing object. With False (the default) the task fails
        before downloading anything when the destination exists.
    :param block_size: bytes written to the store at a time (default 8 MiB; S3 needs >= 5 MiB).
    :return: the destination URL without the connection id (``abfs://container/path``,
        ``file:///data/x.csv``). A destination known at parse time (no Jinja) is also declared
        as this task's outlet (an Asset / Dataset).

    The other arguments (``callback_url``, ``followanalytics_conn_id``, ``gzip``,
    ``gzip_level``, ``download_attempts``, ``deferrable``, ``poll_interval``,
    ``wait_timeout``) are those of every transfer (see ``FollowAnalyticsTransferOperator``).
    """

    template_fields: Sequence[str] = (*FollowAnalyticsTransferOperator.template_fields, "destination", "conn_id")
    ui_color = "#e8f7e4"

    def __init__(
        self,
        *,
        destination: Any,
        conn_id: str | None = None,
        replace: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
        **kwargs: Any,
    ) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 256 * 1024:
            raise FollowAnalyticsConfigError(f"block_size={block_size!r} is invalid; expected at least 256 KiB.")
        static = _static_destination(destination)
        if static is not None:
            for module, requirement in PACKAGES_BY_PROTOCOL.get(static[0], ()):
                require_provider(type(self).__name__, module, requirement)
        super().__init__(outlet_uri=static[1] if static else None, **kwargs)
        self.destination = destination
        self.conn_id = conn_id
        self.replace = replace
        self.block_size = block_size

    def prepare(self) -> str:
        """Resolve the path; check its store and ``replace`` before anything is downloaded."""
        if not isinstance(self.destination, str) and not hasattr(self.destination, "protocol"):
            raise FollowAnalyticsConfigError(
                f"destination={self.destination!r} is invalid; expected an ObjectStoragePath or its URL."
            )
        if isinstance(self.destination, str) and "://" not in self.destination:
            raise FollowAnalyticsConfigError(
                f"destination={self.destination!r} is not a URL; expected e.g. 'file:///data/devices.csv' or "
                "'abfs://azure_conn@container/path/devices.csv'."
            )
        destination = _unalias(self.destination) if isinstance(self.destination, str) else self.destination
        self._path = self.written_to = path = object_storage_path(destination, self.conn_id)
        uri = destination_uri(path)
        if not path.path.rstrip("/") or path.path.endswith("/") or not bucket_and_key(path)[1]:
            raise FollowAnalyticsConfigError(f"destination {uri} names no object (it ends with '/' or is a bucket).")
        if path.protocol in LOCAL_PROTOCOLS:
            path.fs.makedirs(path.fs._parent(path.path), exist_ok=True)
        elif not _bucket_exists(path):
            raise FollowAnalyticsError(
                f"{path.protocol}://{bucket_and_key(path)[0]} does not exist (or this connection cannot see it); "
                "nothing was downloaded. Create it, or fix the destination's bucket / container name."
            )
        if not self.replace and path.fs.exists(path.path):
            raise FollowAnalyticsError(
                f"{uri} already exists and replace=False; nothing was downloaded. Set replace=True to "
                "overwrite it, or template the path (e.g. with {{ ds }}) to write one object per run."
            )
        return uri

    def upload(self, reader: ExportReader) -> str:
        """Write every block, then commit; discard the staged upload or temporary file on any error."""
        path = self._path
        staged = path.protocol in STAGING_PROTOCOLS
        sink = (_StagedFile if staged else _RenamedFile)(path, self.block_size, self.log)
        try:
            for block in iter(lambda: reader.read(self.block_size), b""):
                sink.write(block)
        except BaseException:
            sink.discard()
            raise
        sink.commit()
        stored = path.fs.size(path.path)
        if stored != reader.bytes_out:
            path.fs.rm_file(path.path)
            raise FollowAnalyticsError(
                f"{destination_uri(path)} holds {stored} bytes after the upload but {reader.bytes_out} were "
                "written; it was deleted."
            )
        return "staged upload, committed" if staged else "temporary file, renamed"


__all__ = ["FollowAnalyticsToObjectStorageOperator"]
