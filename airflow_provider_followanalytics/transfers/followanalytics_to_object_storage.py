"""FollowAnalyticsToObjectStorageOperator: stream a ready export to any ``ObjectStoragePath`` (fsspec, at run time)."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_followanalytics._checks import check_int
from airflow_provider_followanalytics._compat import object_storage_path
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError
from airflow_provider_followanalytics.hooks._export_reader import MiB
from airflow_provider_followanalytics.transfers._base import (
    PACKAGE,
    FollowAnalyticsTransferOperator,
    already_exists,
    require_provider,
    static_value,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader

_AMAZON = (("airflow.providers.amazon", f"{PACKAGE}[amazon]"), ("s3fs", "apache-airflow-providers-amazon[s3fs]"))
_GOOGLE = (("airflow.providers.google", f"{PACKAGE}[google]"), ("gcsfs", f"{PACKAGE}[google]"))
_AZURE = (("airflow.providers.microsoft.azure", f"{PACKAGE}[azure]"), ("adlfs", f"{PACKAGE}[azure]"))
#: What a protocol needs installed: (module, what to pip install), checked when the DAG is parsed.
PACKAGES_BY_PROTOCOL = (
    dict.fromkeys(("s3", "s3a"), _AMAZON)
    | dict.fromkeys(("gs", "gcs"), _GOOGLE)
    | dict.fromkeys(("abfs", "abfss", "adl"), _AZURE)
)
#: The stores above stage an upload until its end (multipart upload, resumable session, uncommitted blocks).
STAGING_PROTOCOLS = frozenset(PACKAGES_BY_PROTOCOL)
#: adlfs files commit their block list on ``close()``, whatever ``autocommit`` says.
COMMIT_ON_CLOSE_PROTOCOLS = frozenset({"abfs", "abfss", "adl"})
#: Azure URLs the microsoft-azure provider does not register, read as ``abfs://`` (the same adlfs filesystem).
ALIASES = {"wasb": "abfs", "wasbs": "abfss", "az": "abfs"}
LOCAL_PROTOCOLS = frozenset({"file", "local"})


def destination_uri(path: Any) -> str:
    """``protocol://bucket/key`` of an ``ObjectStoragePath`` (``file:///abs/path`` locally), without the conn id."""
    bucket, _, key = str(path.path).partition("/")  # not path.bucket: it holds the conn id on Airflow 2.10
    return f"file://{path.path}" if path.protocol in LOCAL_PROTOCOLS else f"{path.protocol}://{bucket}/{key}"


def _unalias(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return ALIASES.get(scheme.lower(), scheme) + sep + rest


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


@contextlib.contextmanager
def _staged_file(path: Any, block_size: int, log: Any) -> Iterator[Any]:
    """The store's own file, published when the ``with`` block ends; an error discards the upload."""
    fs = path.fs
    file = fs.open(path.path, "wb", block_size=block_size, autocommit=False)
    try:
        yield file
        file.close()  # s3fs / gcsfs: sends what is buffered, publishes nothing; adlfs: commits
        file.commit()  # a failure here too must not leave S3's multipart upload pending
    except BaseException:
        _discard(file, path.protocol, log)
        raise
    finally:
        # fsspec lists every autocommit=False file in the (cached) filesystem's transaction; a
        # later ``with fs.transaction`` would otherwise commit or discard it again.
        with contextlib.suppress(ValueError, AttributeError):
            fs.transaction.files.remove(file)


def _discard(file: Any, protocol: str, log: Any) -> None:
    """Drop a staged upload without publishing any of it; a failure to do so is only logged."""
    try:
        if protocol in COMMIT_ON_CLOSE_PROTOCOLS:
            from adlfs.utils import close_container_client
            from fsspec.asyn import sync

            file.buffer = None
            file.closed = True  # fsspec's close() and __del__ now do nothing: no commit
            sync(file.loop, close_container_client, file)
            return
        with contextlib.suppress(Exception):  # the upload may be what failed: discard anyway
            file.close()
        # gcsfs's discard() DELETEs the resumable session: GCS answers 499, which gcsfs raises,
        # and the emulator 501, which gcsfs retries for 30 s; an unfinished session is no object.
        if protocol not in ("gs", "gcs"):
            file.discard()  # aborts the S3 multipart upload
    except Exception as exc:  # the error that stopped the transfer matters more than this one
        log.warning("Could not discard the unfinished upload (%s: %s)", type(exc).__name__, exc)


@contextlib.contextmanager
def _renamed_file(path: Any, block_size: int) -> Iterator[Any]:
    """A hidden temporary file beside the destination, renamed onto it at the end, removed on error."""
    fs, (parent, _, name) = path.fs, path.path.rpartition("/")
    temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial"
    file = fs.open(temporary, "wb", block_size=block_size)
    try:
        yield file
        file.close()
        fs.mv(temporary, path.path)  # os.rename on a local disk: atomic
    except BaseException:
        with contextlib.suppress(Exception):
            file.close()
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(temporary)
        raise


def _check_local_folder(path: Any, uri: str) -> None:
    """Create the destination's folder and write a probe file in it: a read-only volume, a folder of
    another user or a file in the way fails here, before the download, with the folder named."""
    fs, folder = path.fs, path.fs._parent(path.path)
    step = "create"
    try:
        fs.makedirs(folder, exist_ok=True)
        step, probe = "write in", f"{folder}/.{uuid.uuid4().hex[:12]}.write-check"
        fs.touch(probe)
        fs.rm_file(probe)
    except OSError as exc:
        raise FollowAnalyticsError(
            f"Cannot {step} the folder {folder} of {uri}: {exc.strerror or exc}; nothing was downloaded."
        ) from None


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
    :return: the destination URL without the connection id (``abfs://container/path``,
        ``file:///data/x.csv``).

    The other arguments are those of every transfer (``FollowAnalyticsTransferOperator``).
    """

    template_fields: Sequence[str] = (*FollowAnalyticsTransferOperator.template_fields, "destination", "conn_id")
    ui_color = "#e8f7e4"

    def __init__(
        self,
        *,
        destination: Any,
        conn_id: str | None = None,
        replace: bool = False,
        block_size: int = 8 * MiB,
        **kwargs: Any,
    ) -> None:
        check_int("block_size", block_size, 256 * 1024, 1 << 40, "at least 256 KiB")
        static = _static_destination(destination)
        for module, requirement in PACKAGES_BY_PROTOCOL.get(static[0] if static else "", ()):
            require_provider(type(self).__name__, module, requirement)
        super().__init__(outlet_uri=static[1] if static else None, **kwargs)
        self.destination, self.conn_id, self.replace, self.block_size = destination, conn_id, replace, block_size

    def prepare(self) -> str:
        """Resolve the path; check its store and ``replace`` before anything is downloaded."""
        if not hasattr(self.destination, "protocol") and "://" not in str(self.destination):
            raise FollowAnalyticsConfigError(
                f"destination={self.destination!r} is not a URL; expected an ObjectStoragePath or a URL such as "
                "'file:///data/devices.csv' or 'abfs://azure_conn@container/path/devices.csv'."
            )
        destination = _unalias(self.destination) if isinstance(self.destination, str) else self.destination
        self._path = self.written_to = path = object_storage_path(destination, self.conn_id)
        uri, (bucket, _, key) = destination_uri(path), str(path.path).partition("/")
        if not key or path.path.endswith("/"):
            raise FollowAnalyticsConfigError(f"destination {uri} names no object (it ends with '/' or is a bucket).")
        if path.protocol in LOCAL_PROTOCOLS:
            _check_local_folder(path, uri)
        else:
            path.fs.invalidate_cache()  # filesystems are shared and cache listings (s3fs lists buckets once)
            if not path.fs.exists(bucket):
                raise FollowAnalyticsError(
                    f"{path.protocol}://{bucket} does not exist (or this connection cannot see it); nothing was "
                    "downloaded. Create it, or fix the destination's bucket / container name."
                )
        if not self.replace and path.fs.exists(path.path):
            raise already_exists(uri, "path")
        return uri

    def upload(self, reader: ExportReader) -> str:
        """Write every block, then publish; discard the staged upload or temporary file on any error."""
        path, staged = self._path, self._path.protocol in STAGING_PROTOCOLS
        with _staged_file(path, self.block_size, self.log) if staged else _renamed_file(path, self.block_size) as file:
            for block in reader.blocks():  # the store's file buffers up to block_size itself
                file.write(block)
        stored = path.fs.size(path.path)
        self.check_stored_size(destination_uri(path), stored, reader.bytes_out, lambda: path.fs.rm_file(path.path))
        return "staged upload, committed" if staged else "temporary file, renamed"


__all__ = ["FollowAnalyticsToObjectStorageOperator"]
