"""Where an export is written: any ``ObjectStoragePath``, checked before the export and never left partial.

Used by ``FollowAnalyticsToObjectStorageOperator`` and by the export operators' one-task form
(``destination=``). :meth:`ObjectStorageDestination.check` runs before any FollowAnalytics request:
the store's bucket or container exists, the connection may write to it (an upload is started and
abandoned, which publishes nothing; on S3 the uploads of the key a killed attempt left are aborted),
the object is absent unless ``replace``, a local folder can be created and written.
:meth:`ObjectStorageDestination.write` streams an export into it: object stores stage the upload and
publish it at the end; other stores get a hidden ``.<name>.<random>.partial`` file beside the
destination, renamed onto it (README, *Destinations*).
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_followanalytics._compat import object_storage_path
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader

PACKAGE = "airflow-provider-followanalytics"
_AMAZON = (("airflow.providers.amazon", f"{PACKAGE}[amazon]"), ("s3fs", f"{PACKAGE}[amazon]"))
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
_TYPES_BY_SUFFIX = {".csv": "text/csv; charset=utf-8", ".xls": "application/vnd.ms-excel"}
_TYPES_BY_MEDIA = {"text/csv": "text/csv; charset=utf-8", "application/vnd.ms-excel": "application/vnd.ms-excel"}


def content_type_for(server_content_type: str, object_name: str, gzip: bool) -> str:
    """The object's Content-Type: gzip, else the export's own (CSV is UTF-8), else by the name's suffix."""
    if gzip:
        return "application/gzip"
    by_media = _TYPES_BY_MEDIA.get(server_content_type.split(";", 1)[0].strip().lower())
    by_suffix = _TYPES_BY_SUFFIX.get(PurePosixPath(object_name).suffix.lower())
    return by_media or by_suffix or server_content_type.strip() or "application/octet-stream"


def static_value(value: object) -> str | None:
    """``value`` when it is a string known at DAG parse time (no Jinja), else None."""
    return value if isinstance(value, str) and "{{" not in value and "{%" not in value else None


def already_exists(uri: str, templated: str) -> FollowAnalyticsError:
    """The error of a destination that exists while ``replace=False`` (raised before any download)."""
    return FollowAnalyticsError(
        f"{uri} already exists and replace=False; nothing was downloaded. Set replace=True to overwrite it, "
        f"or template the {templated} (e.g. with {{{{ ds }}}}) to write one object per run."
    )


def check_stored_size(uri: str, stored: int | None, sent: int, delete: Callable[[], Any]) -> None:
    """Fail (after ``delete()``) if the store holds another size than what was sent."""
    if stored is not None and stored != sent:
        delete()
        raise FollowAnalyticsError(f"{uri} holds {stored} bytes after the upload but {sent} were sent; it was deleted.")


def destination_uri(path: Any) -> str:
    """``protocol://bucket/key`` of an ``ObjectStoragePath`` (``file:///abs/path`` locally), without the conn id."""
    bucket, _, key = str(path.path).partition("/")  # not path.bucket: it holds the conn id on Airflow 2.10
    return f"file://{path.path}" if path.protocol in LOCAL_PROTOCOLS else f"{path.protocol}://{bucket}/{key}"


def unalias(url: str) -> str:
    """``url`` with an Azure alias scheme (``wasb://``, ``az://``) read as ``abfs://``."""
    scheme, sep, rest = url.partition("://")
    return ALIASES.get(scheme.lower(), scheme) + sep + rest


def static_destination(destination: object) -> tuple[str, str] | None:
    """(protocol, URI) of a destination known at parse time, else None (templated or unusable)."""
    if not isinstance(destination, str):  # an ObjectStoragePath the DAG author built
        try:
            return str(destination.protocol), destination_uri(destination)  # type: ignore[attr-defined]
        except AttributeError:
            return None
    url = static_value(destination)
    if url is None or "://" not in url:
        return None
    parts = urlsplit(unalias(url))
    host = parts.netloc.rpartition("@")[2]  # drop the connection id
    return parts.scheme.lower(), f"{parts.scheme.lower()}://{host}{parts.path}"


class ObjectStorageDestination:
    """One object an export is written to: checked first, then written whole or not at all.

    :param destination: an ``ObjectStoragePath``, or its URL (rendered).
    :param conn_id: the store's Airflow connection, when the URL names none.
    :param replace: overwrite an existing object (else the check fails when it exists).
    :param block_size: bytes the store's file sends at a time (its part or block size).
    :param content_type: the object's Content-Type on stores that keep one (S3, GCS, Azure);
        default: the export's (``text/csv; charset=utf-8``, ``application/vnd.ms-excel``).
    :param gzip: the bytes written are gzip (Content-Type ``application/gzip`` by default).
    :param log: where notes go (a failed discard).
    """

    def __init__(
        self,
        destination: Any,
        conn_id: str | None,
        *,
        replace: bool,
        block_size: int,
        content_type: str | None,
        gzip: bool,
        log: Any,
    ) -> None:
        self.destination, self.conn_id, self.replace, self.block_size = destination, conn_id, replace, block_size
        self.content_type, self.gzip, self.log = content_type, gzip, log
        self.path: Any = None
        self.uri = ""

    def check(self) -> str:
        """Resolve the path and check the store before anything is requested; return the URI (no conn id)."""
        if not hasattr(self.destination, "protocol") and "://" not in str(self.destination):
            raise FollowAnalyticsConfigError(
                f"destination={self.destination!r} is not a URL; expected an ObjectStoragePath or a URL such as "
                "'file:///data/devices.csv' or 'abfs://azure_conn@container/path/devices.csv'."
            )
        destination = unalias(self.destination) if isinstance(self.destination, str) else self.destination
        self.path = path = object_storage_path(destination, self.conn_id)
        self.uri = uri = destination_uri(path)
        bucket, _, key = str(path.path).partition("/")
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
        if path.protocol in STAGING_PROTOCOLS:
            _check_writable(path, bucket, key, uri, self.log)
        return uri

    def write(self, reader: ExportReader) -> str:
        """Write every block of ``reader``, then publish; on any error discard what was staged."""
        path, staged = self.path, self.path.protocol in STAGING_PROTOCOLS
        options = self._content_options(reader.content_type)
        opened = (
            _staged_file(path, self.block_size, options, self.log) if staged else _renamed_file(path, self.block_size)
        )
        with opened as file:
            for block in reader.blocks():  # the store's file buffers up to block_size itself
                file.write(block)
        check_stored_size(self.uri, path.fs.size(path.path), reader.bytes_out, lambda: path.fs.rm_file(path.path))
        return "staged upload, committed" if staged else "temporary file, renamed"

    def _content_options(self, server_content_type: str) -> dict[str, Any]:
        """The store's own spelling of the Content-Type to keep (none for local files)."""
        content_type = self.content_type or content_type_for(server_content_type, self.path.path, self.gzip)
        protocol = self.path.protocol
        if protocol in ("s3", "s3a"):
            return {"ContentType": content_type}
        if protocol in ("gs", "gcs"):
            return {"content_type": content_type}
        if protocol in COMMIT_ON_CLOSE_PROTOCOLS:
            return {"content_settings": {"content_type": content_type}}
        return {}


def _check_writable(path: Any, bucket: str, key: str, uri: str, log: Any) -> None:
    """Start an upload and abandon it (nothing is published): a read-only identity fails here."""
    from fsspec.asyn import sync

    fs = path.fs
    try:
        if path.protocol in ("s3", "s3a"):
            upload = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            # One key is written by one task: the uploads of this very key that an attempt killed by
            # SIGKILL (OOM, eviction) left open would otherwise be billed until a lifecycle rule ends them.
            pending = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key).get("Uploads", [])
            orphans = [upload["UploadId"] for upload in pending if upload["Key"] == key]
            for upload_id in orphans:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
            if orphans:
                log.warning(
                    "Aborted %d unfinished multipart upload(s) of %s left by a killed attempt", len(orphans), uri
                )
        elif path.protocol in ("gs", "gcs"):
            from gcsfs.core import initiate_upload

            # An unfinished resumable session is no object; GCS forgets it after a week.
            sync(fs.loop, initiate_upload, fs, bucket, key, "application/octet-stream", None)
        elif path.protocol in COMMIT_ON_CLOSE_PROTOCOLS:
            block_id = base64.b64encode(uuid.uuid4().hex.encode()).decode()
            # Beside the destination, not on it: every block id of one blob must have the same length.
            parent, _, name = key.rpartition("/")
            probe = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.write-check".lstrip("/")

            async def stage_a_block() -> None:  # an uncommitted block is no blob; Azure drops it after a week
                async with fs.service_client.get_blob_client(bucket, probe) as blob:
                    await blob.stage_block(block_id, b"\0")

            sync(fs.loop, stage_a_block)
    except Exception as exc:
        raise FollowAnalyticsError(
            f"This connection may not write {uri} ({type(exc).__name__}: {exc}); nothing was downloaded. "
            "Give its identity write access to the bucket / container, or use another connection."
        ) from None


@contextlib.contextmanager
def _staged_file(path: Any, block_size: int, options: dict[str, Any], log: Any) -> Iterator[Any]:
    """The store's own file, published when the ``with`` block ends; an error discards the upload."""
    fs = path.fs
    file = fs.open(path.path, "wb", block_size=block_size, autocommit=False, **options)
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
